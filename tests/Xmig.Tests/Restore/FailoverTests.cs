using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Xmig.Domains;
using Xmig.Formats;
using Xmig.Restore;
using Xmig.Save;
using Xmig.Tests.Domains;
using Xmig.Tests.Support;

namespace Xmig.Tests.Restore;

/// <summary>
/// Failover on any broken source (v2-stream.md §6.4 BUFFERING; legacy-stream.md §9.2–§9.4), through real TCP
/// connections on 127.0.0.1 and pipes to a child process: a reset, a close or silence beyond the heartbeat while a
/// checkpoint is being received commits the last complete checkpoint; before the first complete checkpoint the same
/// cuts fail and leave nothing behind.
/// </summary>
public sealed class FailoverTests
{
    private static readonly TimeSpan Heartbeat = TimeSpan.FromMilliseconds(300);
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(60);

    private static readonly Dictionary<string, Lazy<SavedStream>> Streams = new()
    {
        ["libxl"] = new(() => SaveStream("libxl")),
        ["legacy-4.1"] = new(() => SaveStream("legacy-4.1")),
        ["libxl-plain"] = new(() => SaveStream("libxl", checkpoints: 0)),
    };

    public enum Cut
    {
        Reset,
        Close,
        Silence,
        SilenceThenClose,
    }

    [Theory]
    [InlineData("libxl", Cut.Reset, "read-error")]
    [InlineData("libxl", Cut.Close, "eof")]
    [InlineData("libxl", Cut.Silence, "heartbeat-timeout")]
    [InlineData("legacy-4.1", Cut.Reset, "read-error")]
    [InlineData("legacy-4.1", Cut.Close, "eof")]
    [InlineData("legacy-4.1", Cut.Silence, "heartbeat-timeout")]
    public void SocketCutMidCheckpoint_CommitsTheLastCompleteCheckpoint(string kind, Cut cut, string reason)
    {
        var saved = Streams[kind].Value;
        var at = MidCheckpoint(saved, 3);
        using var tmp = new TempDirectory();
        var (digest, result) = RestoreOverSocket(saved.Bytes.AsMemory(0, at), cut, tmp["restored"]);

        Assert.Equal(saved.AtCheckpoint[1], digest);
        Assert.Equal(2, result.CheckpointCommitted);
        Assert.Equal(reason, result.FinishReason.Name());
        Assert.NotNull(result.Discarded);
        Assert.NotNull(result.FinishOffset);
        Assert.True(Directory.Exists(tmp["restored"]));
    }

    [Theory]
    [InlineData("libxl", Cut.Reset)]
    [InlineData("libxl", Cut.Close)]
    [InlineData("libxl", Cut.SilenceThenClose)]
    [InlineData("legacy-4.1", Cut.Reset)]
    [InlineData("legacy-4.1", Cut.Close)]
    [InlineData("legacy-4.1", Cut.SilenceThenClose)]
    public void SocketCutBeforeFirstCheckpoint_FailsAndLeavesNothing(string kind, Cut cut)
    {
        var saved = Streams[kind].Value;
        var at = (int)(saved.CheckpointEnds[0] / 2);
        using var tmp = new TempDirectory();

        // Silence before the first complete checkpoint is not bounded (Xen's heartbeat starts after it): the sender
        // then closes, and the restore fails as for a close.
        var e = Assert.ThrowsAny<Exception>(() => { RestoreOverSocket(saved.Bytes.AsMemory(0, at), cut, tmp["restored"]); });
        Assert.True(e is IOException or SocketException or StreamFormatException, e.ToString());
        Assert.Empty(Directory.GetFileSystemEntries(tmp.Path));
        Assert.Empty(Directory.GetFiles(Path.GetTempPath(), $".xmig-checkpoint-{Environment.ProcessId}-*"));
    }

    [Theory]
    [InlineData("libxl")]
    [InlineData("legacy-4.1")]
    public void CheckpointedStream_OnASocketThatStaysOpen_EndsOnTheHeartbeatWithItsLastCheckpoint(string kind)
    {
        // A Remus sender ends with a checkpoint, not END (legacy §9.4, v2 §6.4): its end is silence.
        var saved = Streams[kind].Value;
        using var tmp = new TempDirectory();
        var (digest, result) = RestoreOverSocket(saved.Bytes, Cut.Silence, tmp["restored"]);
        Assert.Equal(saved.Final, digest);
        Assert.Equal(3, result.CheckpointCommitted);
        Assert.Equal(RestoreFinishReason.HeartbeatTimeout, result.FinishReason);
    }

    [Fact]
    public void PlainStream_OnASocketThatStaysOpen_EndsAtItsEnd()
    {
        var saved = Streams["libxl-plain"].Value;
        using var tmp = new TempDirectory();
        var (digest, result) = RestoreOverSocket(saved.Bytes, Cut.Silence, tmp["restored"]);
        Assert.Equal(saved.Final, digest);
        Assert.Equal(RestoreFinishReason.End, result.FinishReason);
    }

    [Theory]
    [InlineData("libxl", false, "eof")]
    [InlineData("libxl", true, "heartbeat-timeout")]
    [InlineData("legacy-4.1", false, "eof")]
    [InlineData("legacy-4.1", true, "heartbeat-timeout")]
    public void Cli_PipeCutMidCheckpoint_CommitsTheLastCompleteCheckpoint(string kind, bool keepOpen, string reason)
    {
        var saved = Streams[kind].Value;
        var at = MidCheckpoint(saved, 3);
        var (code, stdout, stderr) = RunWithPipe(saved.Bytes.AsMemory(0, at), keepOpen, "restore", "--json", "--heartbeat", "300", "-");
        Assert.True(code == 0, stderr);
        using var json = JsonDocument.Parse(stdout);
        var r = json.RootElement;
        Assert.Equal(reason, r.GetProperty("finish_reason").GetString());
        Assert.Equal(2, r.GetProperty("checkpoint_committed").GetInt32());
        Assert.Equal(saved.AtCheckpoint[1].Sha256, r.GetProperty("memory_sha256").GetString());
    }

    [Theory]
    [InlineData("restore")]
    [InlineData("verify")]
    public void Cli_CompleteStreamOnAPipeThatStaysOpen_Finishes(string verb)
    {
        var saved = Streams["libxl-plain"].Value;
        var (code, stdout, stderr) = RunWithPipe(saved.Bytes, keepOpen: true, verb, "-");
        Assert.True(code == 0, stderr);
        if (verb == "restore")
        {
            Assert.Contains("finish_reason end", stdout);
            Assert.Contains(saved.Final.Sha256, stdout);
        }
    }

    [Fact]
    public async Task Cli_StdinIsTheSocket_SilenceMidCheckpointCommitsTheLastCompleteCheckpoint()
    {
        if (!File.Exists("/bin/bash"))
        {
            Console.WriteLine("SKIPPED Cli_StdinIsTheSocket: /bin/bash (for /dev/tcp) is not available");
            return;
        }

        var saved = Streams["libxl"].Value;
        var at = MidCheckpoint(saved, 3);
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        var start = new ProcessStartInfo("/bin/bash")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add("-c");
        start.ArgumentList.Add($"exec dotnet \"$0\" restore --json --heartbeat 300 - 0</dev/tcp/127.0.0.1/{port}");
        start.ArgumentList.Add(XmigProcess.Dll);
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var connect = new CancellationTokenSource(Bound);
        using var sender = await listener.AcceptSocketAsync(connect.Token);
        sender.Send(saved.Bytes.AsSpan(0, at));
        var exited = process.WaitForExit(Bound);
        if (!exited)
        {
            process.Kill();
        }

        Assert.True(exited, "restore did not finish on heartbeat silence");
        Assert.True(process.ExitCode == 0, await stderr);
        using var json = JsonDocument.Parse(await stdout);
        Assert.Equal("heartbeat-timeout", json.RootElement.GetProperty("finish_reason").GetString());
        Assert.Equal(2, json.RootElement.GetProperty("checkpoint_committed").GetInt32());
        Assert.Equal(saved.AtCheckpoint[1].Sha256, json.RootElement.GetProperty("memory_sha256").GetString());
    }

    [Fact]
    public void FormatErrorMidCheckpoint_NamesTheRecordAndOffset()
    {
        var saved = Streams["libxl"].Value;
        var bytes = saved.Bytes.ToArray();
        var at = (int)saved.CheckpointEnds[1];

        // The first record of checkpoint 3 declares a length beyond the record limit.
        bytes.AsSpan(at + 4, 4).Fill(0xFF);
        using var tmp = new TempDirectory();
        var (digest, result) = SaveRestoreSupport.Restore(bytes, tmp["r"]);
        Assert.Equal(saved.AtCheckpoint[1], digest);
        Assert.Equal(RestoreFinishReason.FormatError, result.FinishReason);
        Assert.Equal(at, result.FinishOffset);
        Assert.NotNull(result.FinishRecord);
    }

    private static SavedStream SaveStream(string kind, int checkpoints = 3)
    {
        using var tmp = new TempDirectory();
        using var source = SaveRestoreSupport.Domain(tmp, "pv", memoryMiB: 16);
        var saved = SaveRestoreSupport.Save(source, new SaveOptions { Kind = SaveRestoreSupport.Kind(kind), Checkpoints = checkpoints }, "uniform:100");
        if (checkpoints > 0)
        {
            Assert.NotEqual(saved.AtCheckpoint[1], saved.AtCheckpoint[2]);
        }

        return saved;
    }

    private static int MidCheckpoint(SavedStream saved, int checkpoint)
    {
        var start = saved.CheckpointEnds[checkpoint - 2];
        return (int)(start + ((saved.CheckpointEnds[checkpoint - 1] - start) / 2));
    }

    /// <summary>
    /// Restores in-process from a connected socket while a sender writes <paramref name="bytes"/> and then cuts the
    /// connection. The cut happens only once the receiver has read every octet sent, so what it saw is deterministic.
    /// </summary>
    private static (MemoryDigestResult Digest, RestoreResult Result) RestoreOverSocket(ReadOnlyMemory<byte> bytes, Cut cut, string dir)
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        client.Connect((IPEndPoint)listener.LocalEndpoint);
        using var sender = listener.AcceptSocket();
        using var input = new CountingNetworkStream(client);
        using var done = new CancellationTokenSource();
        var closedFirst = false;
        var send = Task.Run(() =>
        {
            try
            {
                sender.Send(bytes.Span);
            }
            catch (SocketException)
            {
                return; // the receiver stopped reading and closed
            }

            var deadline = Stopwatch.StartNew();
            while (input.Taken < bytes.Length && !done.IsCancellationRequested && deadline.Elapsed < Bound)
            {
                Thread.Sleep(5);
            }

            switch (cut)
            {
                case Cut.Reset:
                    sender.LingerState = new LingerOption(true, 0);
                    sender.Close();
                    break;
                case Cut.Close:
                    sender.Shutdown(SocketShutdown.Send);
                    sender.Close();
                    break;
                case Cut.SilenceThenClose:
                    Thread.Sleep(Heartbeat * 3);
                    sender.Close();
                    break;
                default:
                    // Silence: the connection stays open until the receiver is done; closing it first (after the
                    // bound) means the receiver waited for it.
                    closedFirst = !done.Token.WaitHandle.WaitOne(Bound);
                    sender.Close();
                    break;
            }
        });
        try
        {
            var (domain, result) = SimulatedRestore.ToDirectory(input, dir, new RestoreOptions { Heartbeat = Heartbeat });
            using (domain)
            {
                return (MemoryDigest.Compute(domain), result);
            }
        }
        catch
        {
            client.Close(); // unblocks a sender still writing
            throw;
        }
        finally
        {
            done.Cancel();
            Assert.True(send.Wait(Bound));
            Assert.False(closedFirst, "the restore waited for the sender to close");
        }
    }

    private static (int Code, string Stdout, string Stderr) RunWithPipe(ReadOnlyMemory<byte> bytes, bool keepOpen, params string[] args)
    {
        using var process = XmigProcess.Start(true, args);
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        var stdin = process.StandardInput.BaseStream;
        try
        {
            stdin.Write(bytes.Span);
            stdin.Flush();
        }
        catch (IOException)
        {
            // the child stopped reading (it found the END): fine
        }

        if (!keepOpen)
        {
            stdin.Close();
        }

        var exited = process.WaitForExit(Bound);
        if (!exited)
        {
            process.Kill();
        }

        try
        {
            stdin.Close();
        }
        catch (IOException)
        {
        }

        Assert.True(exited, $"xmig {string.Join(' ', args)} did not finish with its input still open");
        return (process.ExitCode, stdout.Result, stderr.Result);
    }

    /// <summary>A socket stream that counts the octets its reader has taken.</summary>
    private sealed class CountingNetworkStream(Socket socket) : NetworkStream(socket, ownsSocket: false)
    {
        private long _read;

        public long Taken => Interlocked.Read(ref _read);

        public override int Read(Span<byte> buffer)
        {
            var n = Socket.Receive(buffer);
            Interlocked.Add(ref _read, n);
            return n;
        }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));
    }
}
