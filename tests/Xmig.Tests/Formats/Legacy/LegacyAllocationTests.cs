using Xmig.Formats;
using Xmig.Formats.Legacy;

namespace Xmig.Tests.Formats.Legacy;

/// <summary>Steady-state page handling allocates nothing per page (STYLE: no per-page allocation).</summary>
public class LegacyAllocationTests
{
    private const int Batches = 64;

    [Fact]
    public void Writer_PageBatchesFromSpans_AllocateNothingPerPage()
    {
        var pages = new byte[1024 * 4096];
        var entries = new uint[1024];
        using var output = new OutputBuffer(Stream.Null);
        using var writer = new LegacyStreamWriter(output, new LegacyWriterOptions(8, GuestType.Hvm));
        writer.WriteHvmHeader(1 << 20);
        for (uint i = 0; i < 1024; i++)
        {
            entries[i] = i;
        }

        writer.WritePageBatch(entries, pages);
        writer.AddPage(5000, LegacyPageType.NoTab, pages.AsSpan(0, 4096));
        writer.FlushBatch();

        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var b = 0; b < Batches; b++)
        {
            writer.WritePageBatch(entries, pages);
            for (uint p = 0; p < 1024; p++)
            {
                writer.AddPage(p, LegacyPageType.NoTab, pages.AsSpan((int)p * 4096, 4096));
            }
        }

        var perPage = (GC.GetAllocatedBytesForCurrentThread() - before) / (double)(Batches * 2048);
        Assert.True(perPage < 1, $"{perPage} octets allocated per page");
    }

    [Fact]
    public void Reader_PageBatches_AllocateNothingPerPage()
    {
        using var ms = new MemoryStream();
        using (var output = new OutputBuffer(ms))
        {
            using var writer = new LegacyStreamWriter(output, new LegacyWriterOptions(8, GuestType.Hvm));
            writer.WriteHvmHeader(1 << 20);
            var pages = new byte[1024 * 4096];
            var entries = new uint[1024];
            for (var b = 0; b < Batches + 1; b++)
            {
                for (var i = 0; i < 1024; i++)
                {
                    entries[i] = (uint)((b * 1024) + i);
                }

                writer.WritePageBatch(entries, pages);
            }

            output.Flush();
        }

        ms.Position = 0;
        using var input = new InputBuffer(ms);
        var reader = new LegacyStreamReader(input, new LegacyStreamOptions(8, GuestType.Hvm));
        reader.Read();
        reader.Read();
        long sum = 0;
        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var b = 0; b < Batches; b++)
        {
            Assert.Equal(LegacyItemKind.PageBatch, reader.Read());
            sum += reader.PageData.Length + reader.PageEntries.Length;
        }

        var perPage = (GC.GetAllocatedBytesForCurrentThread() - before) / (double)(Batches * 1024);
        Assert.True(perPage < 1, $"{perPage} octets allocated per page");
        Assert.Equal(Batches * ((1024L * 4096) + 1024), sum);
    }
}
