using System.Diagnostics;
using Xmig.Tests.Support;

namespace Xmig.Tests.Verify;

[Trait("Category", XmigProcess.Category)]
public class CliProcessTests
{
    private static (int Code, string Out, string Err) RunCli(string[] args, byte[]? stdin = null)
    {
        using var process = XmigProcess.Start(stdin is not null, args);
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (stdin is not null)
        {
            process.StandardInput.BaseStream.Write(stdin);
            process.StandardInput.Close();
        }

        Assert.True(process.WaitForExit(TimeSpan.FromMinutes(2)), "xmig did not exit");
        return (process.ExitCode, stdout.Result, stderr.Result);
    }

    [Fact]
    public void BuiltCli_VerifyMalformedFile_ExitsOneWithOneStderrLine()
    {
        var path = Path.Combine(TestFiles.Malformed, "libxc-page-data-count-70000.bin");
        var (code, _, err) = RunCli(["verify", path]);
        Assert.Equal(1, code);
        Assert.Equal("xmig: error: PAGE_DATA #3 at offset 0x80: count 70000 exceeds 1024", err.TrimEnd('\n'));
    }

    [Fact]
    public void BuiltCli_VerifyFromPipe_XenVector_ExitsZero()
    {
        var data = File.ReadAllBytes(Path.Combine(TestFiles.Vectors, "legacy-hvm-w64-41-xl.xen-xl.bin"));
        var (code, output, _) = RunCli(["verify", "-"], data);
        Assert.Equal(0, code);
        Assert.Contains("valid xl stream", output);
    }

    [Fact]
    public void BuiltCli_UsageError_ExitsTwo()
    {
        var (code, _, err) = RunCli(["verify", "--format", "nonsense", "x"]);
        Assert.Equal(2, code);
        Assert.StartsWith("xmig: error: ", err);
        Assert.Single(err.Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }
}
