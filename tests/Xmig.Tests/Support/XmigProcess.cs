using System.Diagnostics;

namespace Xmig.Tests.Support;

/// <summary>
/// The built <c>xmig</c> run as a real child process: <c>dotnet Xmig.Cli.dll</c> beside the tests, or the executable
/// named by <c>XMIG_EXE</c> when set (CI points it at the native-AOT build, so a trimming fault cannot hide).
/// </summary>
internal static class XmigProcess
{
    /// <summary>Trait category of every test that runs <c>xmig</c> as a child process (CI re-runs them natively).</summary>
    public const string Category = "CliProcess";

    public static string Dll => Path.Combine(AppContext.BaseDirectory, "Xmig.Cli.dll");

    /// <summary>The executable under test when <c>XMIG_EXE</c> names one; null means <c>dotnet Xmig.Cli.dll</c>.</summary>
    public static string? Executable =>
        Environment.GetEnvironmentVariable("XMIG_EXE") is { Length: > 0 } exe ? Path.GetFullPath(exe) : null;

    /// <summary>Start info for <c>xmig ARGS</c> with stdout and stderr redirected (stdin if asked).</summary>
    public static ProcessStartInfo StartInfo(bool redirectStdin, params string[] args)
    {
        var exe = Executable;
        var start = new ProcessStartInfo(exe ?? "dotnet")
        {
            RedirectStandardInput = redirectStdin,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        if (exe is null)
        {
            start.ArgumentList.Add(Dll);
        }

        foreach (var a in args)
        {
            start.ArgumentList.Add(a);
        }

        return start;
    }

    public static Process Start(bool redirectStdin, params string[] args) => Process.Start(StartInfo(redirectStdin, args))!;

    /// <summary><c>xmig ARGS</c> as one POSIX shell command line (for <c>script -c</c>, which runs it on a pseudo-terminal).</summary>
    public static string ShellCommand(params string[] args)
    {
        var words = Executable is { } exe ? new List<string> { exe } : ["dotnet", Dll];
        words.AddRange(args);
        return string.Join(' ', words.Select(w => "'" + w.Replace("'", "'\\''", StringComparison.Ordinal) + "'"));
    }
}

/// <summary>A test that runs xmig on a pseudo-terminal through util-linux <c>script</c>; skipped, saying why, without it.</summary>
public sealed class PseudoTerminalFactAttribute : FactAttribute
{
    public PseudoTerminalFactAttribute()
    {
        if (!File.Exists("/usr/bin/script"))
        {
            Skip = "SKIPPED: util-linux 'script' (a pseudo-terminal for the test) is not installed";
        }
    }
}

/// <summary>The theory form of <see cref="PseudoTerminalFactAttribute"/>.</summary>
public sealed class PseudoTerminalTheoryAttribute : TheoryAttribute
{
    public PseudoTerminalTheoryAttribute()
    {
        if (!File.Exists("/usr/bin/script"))
        {
            Skip = "SKIPPED: util-linux 'script' (a pseudo-terminal for the test) is not installed";
        }
    }
}
