using System.Diagnostics;
using Xmig.Domains;
using Xmig.Tests.Support;

namespace Xmig.Tests.Domains;

/// <summary>A scratch directory under the system temp directory, removed on dispose.</summary>
internal sealed class TempDirectory : IDisposable
{
    public TempDirectory()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "xmig-tests-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public string this[string name] => System.IO.Path.Combine(Path, name);

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

internal static class DomainTestSupport
{
    /// <summary>Creates a small simulated domain directory and returns it open (writable).</summary>
    public static SimulatedDomain CreateDomain(string dir, GuestType type, ulong memoryMiB = 16, int vcpus = 2, ulong seed = 1, int guestWidth = 8) =>
        DomainDirectory.Build(dir, working => SimulatedDomain.Create(working, new DomainSpec(type, memoryMiB << 20, vcpus, seed, guestWidth)));

    /// <summary>Runs the command line in-process; returns exit code, stdout, stderr.</summary>
    public static (int Code, string Out, string Err) Cli(params string[] args)
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        var code = Xmig.Cli.Program.Run(args, stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }

    /// <summary>Runs the built <c>xmig</c> as a child process (bounded in time).</summary>
    public static (int Code, string Out, string Err) CliProcess(params string[] args)
    {
        using var process = XmigProcess.Start(redirectStdin: false, args);
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromMinutes(2)))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException("xmig did not finish");
        }

        return (process.ExitCode, stdout.Result, stderr.Result);
    }

    /// <summary>Waits (bounded) until <paramref name="condition"/> holds; returns whether it did.</summary>
    public static bool WaitUntil(Func<bool> condition, int seconds = 30)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            if (clock.Elapsed > TimeSpan.FromSeconds(seconds))
            {
                return false;
            }

            Thread.Sleep(5);
        }

        return true;
    }
}
