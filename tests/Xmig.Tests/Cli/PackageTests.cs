using System.Diagnostics;
using System.IO.Compression;
using System.Xml.Linq;

namespace Xmig.Tests.Cli;

/// <summary>
/// The tool package as users install it: <c>dotnet pack</c> makes <c>xmig.VERSION.nupkg</c> whose id and command are
/// both <c>xmig</c> and which carries the README. (Installing it with <c>dotnet tool install</c> is shown in the README;
/// the test inspects the package, since a restore from a local feed is slow on a loaded machine.)
/// </summary>
public class PackageTests
{
    [Fact]
    [Trait("Category", "Pack")]
    public async Task Pack_MakesPackageXmig_WithCommandXmig_AndTheReadme()
    {
        var repo = FindRepoRoot();
        var outDir = Path.Combine(Path.GetTempPath(), "xmig-pack-test-" + Guid.NewGuid().ToString("N"));
        try
        {
            var start = new ProcessStartInfo("dotnet")
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
                WorkingDirectory = repo,
            };
            foreach (var a in new[] { "pack", Path.Combine("src", "Xmig.Cli"), "-c", "Debug", "-o", outDir, "-nologo" })
            {
                start.ArgumentList.Add(a);
            }

            using var pack = Process.Start(start)!;
            var stdout = pack.StandardOutput.ReadToEndAsync();
            var stderr = pack.StandardError.ReadToEndAsync();
            using var bound = new CancellationTokenSource(TimeSpan.FromMinutes(8));
            try
            {
                await pack.WaitForExitAsync(bound.Token);
            }
            catch (OperationCanceledException)
            {
                pack.Kill(entireProcessTree: true);
                Assert.Fail("dotnet pack did not finish in 8 minutes");
            }

            Assert.True(pack.ExitCode == 0, await stdout + await stderr);
            var nupkg = Assert.Single(Directory.GetFiles(outDir, "*.nupkg"));
            Assert.StartsWith("xmig.", Path.GetFileName(nupkg), StringComparison.Ordinal);
            using var zip = ZipFile.OpenRead(nupkg);
            var nuspec = XDocument.Load(zip.Entries.Single(e => e.FullName.EndsWith(".nuspec", StringComparison.Ordinal)).Open());
            var ns = nuspec.Root!.GetDefaultNamespace();
            var metadata = nuspec.Root.Element(ns + "metadata")!;
            Assert.Equal("xmig", metadata.Element(ns + "id")!.Value);
            Assert.Equal("README.md", metadata.Element(ns + "readme")!.Value);
            Assert.Contains(zip.Entries, e => e.FullName == "README.md" && e.Length > 0);
            var settings = XDocument.Load(zip.Entries.Single(e => e.FullName.EndsWith("DotnetToolSettings.xml", StringComparison.Ordinal)).Open());
            var command = settings.Descendants().Single(e => e.Name.LocalName == "Command");
            Assert.Equal("xmig", command.Attribute("Name")!.Value);
            Assert.Equal("Xmig.Cli.dll", command.Attribute("EntryPoint")!.Value);
        }
        finally
        {
            if (Directory.Exists(outDir))
            {
                Directory.Delete(outDir, recursive: true);
            }
        }
    }

    private static string FindRepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "src", "Xmig.Cli", "Xmig.Cli.csproj")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("repository root not found above " + AppContext.BaseDirectory);
    }
}
