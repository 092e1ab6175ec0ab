using System.CommandLine;
using System.Globalization;

namespace Xmig.Cli.Commands;

/// <summary>
/// Shell completion through System.CommandLine: <c>xmig completion bash|zsh</c> prints a script that asks xmig itself
/// for completions with System.CommandLine's <c>[suggest:POSITION] "COMMAND LINE"</c> directive (the protocol of
/// <c>dotnet-suggest</c>, which therefore works with xmig too). xmig answers the directive in <see cref="TrySuggest"/>:
/// its root is a plain <see cref="Command"/> named <c>xmig</c>, not a <see cref="RootCommand"/>, which alone would
/// parse directives.
/// </summary>
internal static class CompletionCommand
{
    public static Command Create(CliContext ctx)
    {
        var shell = new Argument<string>("SHELL") { Description = "bash or zsh." };
        shell.AcceptOnlyFromAmong("bash", "zsh");
        var command = new Command("completion", "Print a shell completion script: eval \"$(xmig completion bash)\" in ~/.bashrc, or eval \"$(xmig completion zsh)\" in ~/.zshrc.")
        {
            shell,
        };
        command.SetAction(parse =>
        {
            ctx.Out.Write(parse.GetValue(shell) == "zsh" ? Zsh : Bash);
            return (int)ExitCode.Ok;
        });
        return command;
    }

    /// <summary>
    /// Answers <c>xmig [suggest:N] "LINE"</c>: the completions of LINE at character N (default: its end), one per
    /// line. Returns null when <paramref name="args"/> is not a suggest request.
    /// </summary>
    public static int? TrySuggest(Command root, string[] args, TextWriter stdout)
    {
        if (args.Length is 0 or > 2 || !args[0].StartsWith("[suggest", StringComparison.Ordinal) || !args[0].EndsWith(']'))
        {
            return null;
        }

        var line = args.Length > 1 ? args[1] : "";
        var spec = args[0]["[suggest".Length..^1];
        var position = line.Length;
        if (spec.Length > 0 && (spec[0] != ':' || !int.TryParse(spec[1..], NumberStyles.None, CultureInfo.InvariantCulture, out position)))
        {
            return null;
        }

        position = Math.Clamp(position, 0, line.Length);
        foreach (var item in root.Parse(line).GetCompletions(position))
        {
            stdout.WriteLine(item.Label);
        }

        return (int)ExitCode.Ok;
    }

    private const string Bash = """
        # xmig completion for bash: eval "$(xmig completion bash)" (e.g. in ~/.bashrc).
        # xmig answers System.CommandLine's [suggest:POSITION] directive; paths are completed by the shell.
        _xmig_complete() {
            local IFS=$'\n'
            local suggestions
            suggestions=$("${COMP_WORDS[0]}" "[suggest:${COMP_POINT}]" "${COMP_LINE}" 2>/dev/null)
            COMPREPLY=($(compgen -W "${suggestions}" -- "${COMP_WORDS[COMP_CWORD]}"))
            if [ ${#COMPREPLY[@]} -eq 0 ]; then
                COMPREPLY=($(compgen -f -- "${COMP_WORDS[COMP_CWORD]}"))
            fi
        }
        complete -o filenames -F _xmig_complete xmig

        """;

    private const string Zsh = """
        # xmig completion for zsh: eval "$(xmig completion zsh)" (e.g. in ~/.zshrc, after compinit).
        # xmig answers System.CommandLine's [suggest:POSITION] directive; paths are completed by the shell.
        _xmig_complete() {
            local -a suggestions
            suggestions=("${(@f)$(${words[1]} "[suggest:${CURSOR}]" "${BUFFER}" 2>/dev/null)}")
            if (( ${#suggestions} )) && [[ -n "${suggestions[1]}" ]]; then
                compadd -a suggestions
            else
                _files
            fi
        }
        compdef _xmig_complete xmig

        """;
}
