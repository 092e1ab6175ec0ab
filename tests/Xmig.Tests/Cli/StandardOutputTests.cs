using System.Diagnostics;
using Xmig.Tests.Support;

namespace Xmig.Tests.Cli;

/// <summary>A write to standard output that fails (a full device, a closed pipe) is an I/O error: exit 2, one line naming standard output.</summary>
[Trait("Category", XmigProcess.Category)]
public class StandardOutputTests
{
    /// <summary>Runs <paramref name="shell"/> under bash; returns what it printed on stdout and stderr and its status.</summary>
    private static (int Code, string Out, string Err) Bash(string shell)
    {
        var start = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add("-c");
        start.ArgumentList.Add(shell);
        using var p = Process.Start(start)!;
        var output = p.StandardOutput.ReadToEndAsync();
        var error = p.StandardError.ReadToEndAsync();
        Assert.True(p.WaitForExit(TimeSpan.FromSeconds(60)), "bash did not finish: " + shell);
        return (p.ExitCode, output.Result, error.Result);
    }

    /// <summary>An xl save file (Xen's converter's output of a legacy HVM image).</summary>
    private static string Sample => Path.Combine(TestFiles.Vectors, "legacy-hvm-w64-41-xl.xen-xl.bin");

    [Theory]
    [InlineData("inspect", "")]
    [InlineData("verify", "--json")]
    [InlineData("--help", "")]
    public void OutputToAFullDevice_IsExit2_AndNamesStandardOutput(string verb, string option)
    {
        string[] args = verb == "--help" ? ["--help"] : option.Length > 0 ? [verb, Sample, option] : [verb, Sample];
        var (_, _, err) = Bash(XmigProcess.ShellCommand(args) + " > /dev/full; echo \"status $?\" >&2");
        Assert.Contains("status 2", err, StringComparison.Ordinal);
        Assert.Contains("xmig: error: standard output: No space left on device", err, StringComparison.Ordinal);
        Assert.DoesNotContain(Sample, err, StringComparison.Ordinal);
        Assert.DoesNotContain("Exception", err, StringComparison.Ordinal);
    }

    [Fact]
    public void OutputIntoAClosedPipe_IsExit2_NotACutOutputThatSucceeds()
    {
        var file = Sample;

        // The reader ends before xmig starts (it starts half a second later), so xmig's first write meets a closed
        // pipe whatever its speed; a reader that took a line first raced a fast xmig that fitted in the pipe's buffer.
        var (_, output, err) = Bash("(sleep 0.5; exec " + XmigProcess.ShellCommand("inspect", file) + ") | true; echo \"status ${PIPESTATUS[0]}\" >&2");
        Assert.Equal("", output);
        Assert.Contains("status 2", err, StringComparison.Ordinal);
        Assert.Contains("xmig: error: standard output: Broken pipe", err, StringComparison.Ordinal);
    }
}
