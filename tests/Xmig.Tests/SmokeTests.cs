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
}
