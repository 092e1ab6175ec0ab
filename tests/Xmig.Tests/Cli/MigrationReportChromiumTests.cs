using System.Diagnostics;
using SkiaSharp;
using Xmig.Cli.Reporting;
using Xmig.Tests.Domains;

#pragma warning disable xUnit1031 // chromium is waited for with a bounded blocking wait

namespace Xmig.Tests.Cli;

/// <summary>A fact that runs only where a headless Chromium is installed; elsewhere it is reported as skipped with why.</summary>
public sealed class ChromiumFactAttribute : FactAttribute
{
    public ChromiumFactAttribute()
    {
        if (Chromium.Executable is null)
        {
            Skip = "SKIPPED: no chromium on PATH (apt-get install chromium): the report page is not screenshot";
            Console.Error.WriteLine("xmig tests: " + Skip);
        }
    }
}

/// <summary>The headless Chromium of Debian's <c>chromium</c> package.</summary>
internal static class Chromium
{
    public static string? Executable { get; } = Find();

    private static string? Find()
    {
        foreach (var name in (ReadOnlySpan<string>)["chromium", "chromium-browser", "google-chrome"])
        {
            foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries))
            {
                var path = Path.Combine(dir, name);
                if (File.Exists(path))
                {
                    return path;
                }
            }
        }

        return null;
    }

    /// <summary>Screenshots <paramref name="page"/> into <paramref name="png"/>; returns chromium's exit code and output.</summary>
    public static (int Code, string Output) Screenshot(string page, string png, string profile, int width, int height)
    {
        var start = new ProcessStartInfo(Executable!)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in (ReadOnlySpan<string>)[
            "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run", "--disable-extensions",
            "--user-data-dir=" + profile, $"--screenshot={png}", $"--window-size={width},{height}", new Uri(page).AbsoluteUri])
        {
            start.ArgumentList.Add(a);
        }

        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromSeconds(90)))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException("chromium did not finish its screenshot");
        }

        process.WaitForExit();
        return (process.ExitCode, stdout.Result + stderr.Result);
    }
}

/// <summary>The report page as a person sees it: rendered by a real headless Chromium, not blank, the charts drawn.</summary>
public class MigrationReportChromiumTests
{
    private const int Width = 1200;
    private const int Height = 1600;

    [ChromiumFact]
    public void Report_InHeadlessChromium_ScreenshotShowsTheChartsAndText()
    {
        using var tmp = new TempDirectory();
        var page = tmp["report.html"];
        var png = tmp["report.png"];
        MigrationReportPage.Write(page, MigrationReportPageTests.Fabricated());

        var (code, output) = Chromium.Screenshot(page, png, tmp["profile"], Width, Height);

        Assert.True(code == 0 && File.Exists(png), $"chromium exited {code} without a screenshot: {output}");
        if (Environment.GetEnvironmentVariable("XMIG_KEEP_SCREENSHOT") is { Length: > 0 } keep)
        {
            File.Copy(png, keep, overwrite: true);
        }

        using var bitmap = SKBitmap.Decode(png);
        Assert.NotNull(bitmap);
        Assert.Equal(Width, bitmap.Width);
        Assert.Equal(Height, bitmap.Height);

        // Not blank: many colours, and a real share of the page is not the white background.
        var colours = new HashSet<uint>();
        long ink = 0;
        long preCopyBlue = 0;
        long stopAndCopyRed = 0;
        for (var y = 0; y < bitmap.Height; y += 2)
        {
            for (var x = 0; x < bitmap.Width; x += 2)
            {
                var c = bitmap.GetPixel(x, y);
                colours.Add((uint)c);
                if (c.Red < 235 || c.Green < 235 || c.Blue < 235)
                {
                    ink++;
                }

                // The bar colours of MigrationCharts: the pre-copy passes (#3572b0) and the paused pass (#d0452f).
                if (Near(c, 0x35, 0x72, 0xb0))
                {
                    preCopyBlue++;
                }

                if (Near(c, 0xd0, 0x45, 0x2f))
                {
                    stopAndCopyRed++;
                }
            }
        }

        var sampled = (long)(bitmap.Width / 2) * (bitmap.Height / 2);
        Assert.True(colours.Count > 50, $"the screenshot has only {colours.Count} colours");
        Assert.True(ink > sampled / 50, $"only {ink} of {sampled} sampled pixels are not background");
        Assert.True(preCopyBlue > 500, $"the pre-copy bars are not drawn ({preCopyBlue} pixels of their colour)");
        Assert.True(stopAndCopyRed > 20, $"the stop-and-copy bar is not drawn ({stopAndCopyRed} pixels of its colour)");
    }

    private static bool Near(SKColor c, int r, int g, int b) =>
        Math.Abs(c.Red - r) < 12 && Math.Abs(c.Green - g) < 12 && Math.Abs(c.Blue - b) < 12;
}
