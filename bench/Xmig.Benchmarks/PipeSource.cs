using System.IO.Pipes;

namespace Xmig.Benchmarks;

/// <summary>
/// Feeds a file through a real OS pipe from a second thread, the way <c>cat FILE | xmig verify -</c> does, and
/// hands out the read end. The writer uses 1 MiB writes; the read end grows the pipe to 1 MiB as
/// <c>xmig</c> does for a piped standard input.
/// </summary>
internal sealed class PipeSource : IDisposable
{
    private readonly AnonymousPipeServerStream _server;
    private readonly AnonymousPipeClientStream _client;
    private readonly Thread _feeder;

    public PipeSource(string path, bool grow = true)
    {
        _server = new AnonymousPipeServerStream(PipeDirection.Out);
        _client = new AnonymousPipeClientStream(PipeDirection.In, _server.ClientSafePipeHandle);
        if (grow)
        {
            Xmig.IO.PipeTuning.TryGrow(_client);
        }
        _feeder = new Thread(() =>
        {
            var buffer = new byte[1 << 20];
            try
            {
                using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.SequentialScan);
                int n;
                while ((n = file.Read(buffer)) > 0)
                {
                    _server.Write(buffer, 0, n);
                }
            }
            catch (IOException)
            {
                // The reader stopped early (closed its end): nothing more to feed.
            }
            finally
            {
                _server.Dispose();
            }
        })
        { IsBackground = true, Name = "pipe feeder" };
        _feeder.Start();
    }

    /// <summary>The read end: non-seekable, like standard input on a pipe.</summary>
    public Stream Reader => _client;

    public void Dispose()
    {
        _client.Dispose();
        _feeder.Join();
    }
}
