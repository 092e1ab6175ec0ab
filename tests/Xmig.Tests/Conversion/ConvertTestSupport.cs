using System.Buffers.Binary;
using System.Diagnostics;
using System.Security.Cryptography;
using Xmig.Formats;
using Xmig.Formats.Libxc;
using Xmig.Tests.Support;

namespace Xmig.Tests.Conversion;

internal static class ConvertTestSupport
{
    public static (int Code, string Out, string Err) Cli(params string[] args)
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        var code = Xmig.Cli.Program.Run(args, stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }

    public static string TempFile(string name) =>
        Path.Combine(Path.GetTempPath(), $"xmig-conv-{Environment.ProcessId}-{Guid.NewGuid():N}-{name}");

    /// <summary>Runs the built xmig with binary stdin and captured binary stdout (bounded in time).</summary>
    public static (int Code, byte[] Out, string Err) Process(byte[]? stdin, bool closeStdoutEarly, params string[] args)
    {
        using var p = XmigProcess.Start(redirectStdin: true, args);
        var err = p.StandardError.ReadToEndAsync();
        var output = new MemoryStream();
        Task copyOut;
        if (closeStdoutEarly)
        {
            p.StandardOutput.BaseStream.Close();
            copyOut = Task.CompletedTask;
        }
        else
        {
            copyOut = p.StandardOutput.BaseStream.CopyToAsync(output);
        }

        var feed = Task.Run(() =>
        {
            try
            {
                if (stdin is not null)
                {
                    p.StandardInput.BaseStream.Write(stdin);
                }

                p.StandardInput.Close();
            }
            catch (IOException)
            {
                // The child stopped reading (it failed early); that is what some tests expect.
            }
        });
        if (!p.WaitForExit(TimeSpan.FromMinutes(2)))
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException("xmig did not finish");
        }

        copyOut.Wait(TimeSpan.FromMinutes(1));
        feed.Wait(TimeSpan.FromMinutes(1));
        return (p.ExitCode, output.ToArray(), err.Result);
    }

    /// <summary>
    /// Applies every PAGE_DATA record of a v2 stream in order and returns the canonical memory digest (SHA-256 over
    /// each pfn holding data, ascending: 8-octet LE pfn, then the page) and the page count.
    /// </summary>
    public static (string Sha256, int Pages) V2MemoryDigest(byte[] stream)
    {
        using var ms = new MemoryStream(stream);
        using var input = new InputBuffer(ms);
        var reader = new V2StreamReader(input);
        var memory = new SortedDictionary<ulong, byte[]>();
        while (reader.Read())
        {
            if (reader.Item == V2Item.LibxcRecord && reader.Libxc!.Type == RecordType.PageData)
            {
                var view = reader.Libxc.ReadPageData();
                var d = 0;
                for (var i = 0; i < view.Count; i++)
                {
                    var e = BinaryPrimitives.ReadUInt64LittleEndian(view.Entries[(i * 8)..]);
                    if (PageTypes.HasData(PageTypes.TypeOf(e)))
                    {
                        memory[PageTypes.PfnOf(e)] = view.Pages.Slice(d++ * 4096, 4096).ToArray();
                    }
                }
            }
        }

        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        Span<byte> pfn = stackalloc byte[8];
        foreach (var (p, page) in memory)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(pfn, p);
            sha.AppendData(pfn);
            sha.AppendData(page);
        }

        return (Convert.ToHexStringLower(sha.GetHashAndReset()), memory.Count);
    }
}
