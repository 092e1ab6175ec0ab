using System.Diagnostics;
using Xmig.Tests.Domains;
using Xmig.Tests.Support;

namespace Xmig.Tests.Cli;

/// <summary>What verify and inspect do when the user names no input and standard input is a terminal.</summary>
[Trait("Category", XmigProcess.Category)]
public class TerminalInputTests
{
    private static (int Code, string Output) OnTerminal(params string[] args)
    {
        var start = new ProcessStartInfo("script") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in (string[])["-qfec", "stty cols 200; " + XmigProcess.ShellCommand(args), "/dev/null"])
        {
            start.ArgumentList.Add(a);
        }

        using var script = Process.Start(start)!;
        var output = script.StandardOutput.ReadToEndAsync();
        if (!script.WaitForExit(TimeSpan.FromSeconds(60)))
        {
            script.Kill(true);
            Assert.Fail($"xmig {string.Join(' ', args)} waited on the terminal instead of printing its usage");
        }

        return (script.ExitCode, output.Result);
    }

    [PseudoTerminalTheory]
    [InlineData("verify")]
    [InlineData("inspect")]
    public void NoInputOnATerminal_PrintsUsage_InsteadOfWaiting(string verb)
    {
        var (code, output) = OnTerminal(verb);
        Assert.Equal(2, code);
        Assert.Contains($"{verb}: no input", output, StringComparison.Ordinal);
        Assert.Contains($"usage: xmig {verb} [FILE|-]", output, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("verify")]
    [InlineData("inspect")]
    public void AnInputNamedTwice_IsRefusedInOneLine(string verb)
    {
        using var tmp = new TempDirectory();
        File.WriteAllBytes(tmp["a"], [1, 2, 3]);
        File.WriteAllBytes(tmp["b"], [1, 2, 3]);
        var (code, _, err) = DomainTestSupport.Cli(verb, tmp["a"], "-i", tmp["b"]);
        Assert.Equal(2, code);
        Assert.Contains("the input is named twice", err, StringComparison.Ordinal);
        Assert.Single(err.Trim().Split('\n'));
    }
}
