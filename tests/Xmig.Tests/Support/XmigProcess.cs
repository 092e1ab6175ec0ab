using System.Diagnostics;

namespace Xmig.Tests.Support;

/// <summary>The built <c>xmig</c> (Xmig.Cli.dll beside the tests) run as a real child process.</summary>
internal static class XmigProcess
{
    public static string Dll => Path.Combine(AppContext.BaseDirectory, "Xmig.Cli.dll");

    /// <summary>Start info for <c>dotnet Xmig.Cli.dll ARGS</c> with stdout and stderr redirected (stdin if asked).</summary>
    public static ProcessStartInfo StartInfo(bool redirectStdin, params string[] args)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardInput = redirectStdin,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add(Dll);
        foreach (var a in args)
        {
            start.ArgumentList.Add(a);
        }

        return start;
    }

    public static Process Start(bool redirectStdin, params string[] args) => Process.Start(StartInfo(redirectStdin, args))!;
}
