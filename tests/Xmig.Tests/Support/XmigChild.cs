using System.Diagnostics;
using System.Text;
using System.Text.RegularExpressions;

namespace Xmig.Tests.Support;

/// <summary>
/// One <c>xmig</c> child process whose stderr is collected line by line as it comes (so a test can wait for a line)
/// and whose stdout is read to the end. Killed on dispose if still running.
/// </summary>
internal sealed class XmigChild : IDisposable
{
    private readonly StringBuilder _err = new();
    private readonly TaskCompletionSource _errDone = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public XmigChild(bool redirectStdin, params string[] args)
    {
        Process = XmigProcess.Start(redirectStdin, args);
        Stdout = Process.StandardOutput.ReadToEndAsync();
        Process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is null)
            {
                _errDone.TrySetResult();
                return;
            }

            lock (_err)
            {
                _err.AppendLine(e.Data);
            }
        };
        Process.BeginErrorReadLine();
    }

    public XmigChild(params string[] args)
        : this(false, args)
    {
    }

    public Process Process { get; }

    public Task<string> Stdout { get; }

    public string Err
    {
        get
        {
            lock (_err)
            {
                return _err.ToString();
            }
        }
    }

    /// <summary>The <c>xmig: error:</c> lines on stderr.</summary>
    public IReadOnlyList<string> ErrorLines =>
        [.. Err.Split('\n').Select(l => l.TrimEnd('\r')).Where(l => l.StartsWith("xmig: error:", StringComparison.Ordinal))];

    /// <summary>Waits (bounded) for a stderr line matching <paramref name="pattern"/>; the match, or null.</summary>
    public Match? WaitForLine(Regex pattern, TimeSpan bound)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < bound)
        {
            var m = pattern.Match(Err);
            if (m.Success)
            {
                return m;
            }

            if (Process.HasExited && _errDone.Task.IsCompleted)
            {
                m = pattern.Match(Err);
                return m.Success ? m : null;
            }

            Thread.Sleep(10);
        }

        return null;
    }

    /// <summary>Waits (bounded) for the exit; its code, or null when it did not end in time.</summary>
    public int? Finish(TimeSpan bound)
    {
        if (!Process.WaitForExit(bound))
        {
            return null;
        }

        Process.WaitForExit(); // drains the redirected streams
        _errDone.Task.Wait(TimeSpan.FromSeconds(10));
        return Process.ExitCode;
    }

    public void Dispose()
    {
        try
        {
            if (!Process.HasExited)
            {
                Process.Kill(entireProcessTree: true);
                Process.WaitForExit(10_000);
            }
        }
        catch (InvalidOperationException)
        {
        }

        Process.Dispose();
    }
}
