using Xmig.Cli;

namespace Xmig.Tests.Cli;

public class DemoCommandTests
{
    [Fact]
    public void Demo_WritesEveryKind_AllVerify_AndShowsTheDamagedStreamRejected()
    {
        var dir = Path.Combine(Path.GetTempPath(), "xmig-demo-test-" + Guid.NewGuid().ToString("N"));
        try
        {
            using var stdout = new StringWriter();
            using var stderr = new StringWriter();
            var rc = Program.Run(["demo", "--out", dir], stdout, stderr);
            var text = stdout.ToString();
            Assert.True(rc == 0, text + stderr);
            Assert.Contains("demo: every check passed", text);
            Assert.DoesNotContain("INVALID", text);
            Assert.Contains("count 70000 exceeds 1024", text);
            Assert.DoesNotContain("MISMATCH", text);
            Assert.DoesNotContain(" !", text);

            // The matrix: a Remus stream restored as plain stops at checkpoint 1 (Xen's row 7); yes and auto reach 3/3.
            var remus = text.Split('\n').Single(l => l.Contains("legacy-4.1 Remus x3") && l.Contains("new, Remus"));
            Assert.Contains("ckpt 1/3 only", remus);
            Assert.Equal(2, remus.Split("ok, ckpt 3/3").Length - 1);

            // The live sections: a migration between two processes that arrives, and the seed's case both ways.
            Assert.Contains("  arrived: ", text);
            Assert.Contains("downtime ", text);
            Assert.Contains("auto: arrived, digest ", text);
            Assert.Contains("yes:  refused, and the source keeps running", text);
            Assert.Contains("never marked a last checkpoint", text);
            foreach (var name in new[] { "hvm.xl", "hvm.libxl", "hvm.libxc", "pv64.libxl", "pv32.libxc", "hvm-remus3.libxl", "save-legacy-4.0.bin", "save-xl.bin" })
            {
                Assert.True(File.Exists(Path.Combine(dir, name)), name);
            }
        }
        finally
        {
            if (Directory.Exists(dir))
            {
                Directory.Delete(dir, recursive: true);
            }
        }
    }

    [Fact]
    public void DemoSaveRestore_DigestsAreTheSameEveryRun()
    {
        string Once()
        {
            var dir = Path.Combine(Path.GetTempPath(), "xmig-demo-test-" + Guid.NewGuid().ToString("N"));
            Directory.CreateDirectory(dir);
            try
            {
                using var stdout = new StringWriter();
                Assert.Equal(0, Xmig.Cli.Commands.DemoEngineSections.SaveRestore(new CliContext(stdout, TextWriter.Null), dir));
                return stdout.ToString();
            }
            finally
            {
                Directory.Delete(dir, recursive: true);
            }
        }

        var first = Once();
        Assert.Contains(" ok ", first, StringComparison.Ordinal);
        Assert.Equal(first, Once());
    }
}
