using Xmig.Cli;

namespace Xmig.Tests;

public class SmokeTests
{
    [Fact]
    public void Help_ListsExitCodes()
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        var rc = Program.Run(["--help"], stdout, stderr);
        Assert.Equal(0, rc);
        Assert.Contains("Exit codes", stdout.ToString());
    }

    [Fact]
    public void Help_NamesTheCommandXmig()
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        Assert.Equal(0, Program.Run(["verify", "--help"], stdout, stderr));
        Assert.Contains("xmig verify", stdout.ToString());
    }

    [Fact]
    public void UnknownVerb_IsAUsageError_NamingTheWord()
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        Assert.Equal(2, Program.Run(["frobnicate"], stdout, stderr));
        var line = Assert.Single(stderr.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("xmig: error: ", line);
        Assert.Contains("frobnicate", line);
    }
}
