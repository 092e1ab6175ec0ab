using System.CommandLine;
using Xmig.Formats;

namespace Xmig.Cli.Commands;

/// <summary>
/// The input options <c>inspect</c> and <c>verify</c> share: <c>[FILE|-]</c>, Xen's <c>-i/--in FILE|FD</c> and
/// <c>-f/--format</c>.
/// </summary>
internal sealed class StreamSourceOptions
{
    private readonly Argument<string?> _file;
    private readonly Option<string?> _input = new("--in", "-i") { Description = "Input file or file descriptor number (as Xen's tools take it)." };
    private readonly Option<string> _format = new("--format", "-f")
    {
        Description = "Outermost format; auto detects xl, libxl, libxc and (where unambiguous) legacy.",
        DefaultValueFactory = _ => "auto",
    };

    public StreamSourceOptions(string verb)
    {
        _file = new Argument<string?>("file") { Arity = ArgumentArity.ZeroOrOne, Description = $"The stream to {verb}; '-' or absent: stdin." };
        _format.AcceptOnlyFromAmong(StreamInput.FormatNames);
    }

    public void AddTo(Command command)
    {
        command.Arguments.Add(_file);
        command.Options.Add(_input);
        command.Options.Add(_format);
    }

    /// <summary>The input named by <c>-i</c>, else by the argument (null: stdin).</summary>
    public string? Path(ParseResult parse) => parse.GetValue(_input) ?? parse.GetValue(_file);

    /// <summary>The one line for an input named twice (<c>verify FILE -i OTHER</c>), or null.</summary>
    public string? Conflict(ParseResult parse) =>
        parse.GetValue(_input) is { } i && parse.GetValue(_file) is { } f
            ? $"the input is named twice: '{f}' and -i '{i}'; give one"
            : null;

    /// <summary>With <c>-i</c>, a decimal argument is a file descriptor, as in Xen's tools.</summary>
    public bool DecimalIsFd(ParseResult parse) => parse.GetValue(_input) is not null;

    public StreamFormat Format(ParseResult parse) => StreamInput.ParseFormat(parse.GetValue(_format));
}
