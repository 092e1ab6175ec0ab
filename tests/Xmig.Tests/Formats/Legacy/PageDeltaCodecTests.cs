using System.Buffers;
using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using Xmig.Formats.Legacy;
using Xmig.Restore;
using Xmig.Restore.Legacy;

namespace Xmig.Tests.Formats.Legacy;

public class PageDeltaCodecTests
{
    private static byte[] Mutate(byte[] page, int[] positions)
    {
        var copy = (byte[])page.Clone();
        foreach (var p in positions)
        {
            copy[Math.Abs(p % 4096)] ^= 0xA5;
        }

        return copy;
    }

    [Property(MaxTest = 200)]
    public void EncodeThenDecode_AgainstThePreviousPage_GivesTheNewPage(int seed, int[] changes)
    {
        var previous = LegacyTestStreams.Page((uint)(seed & 0xFFFF), seed);
        var current = Mutate(previous, changes ?? []);
        var encoded = new byte[PageDeltaCodec.MaxEncoderOutput];

        var n = PageDeltaCodec.Encode(previous, current, encoded);
        Assert.Equal(OperationStatus.Done, PageDeltaCodec.TryMeasure(encoded.AsSpan(0, n), out var length, out _));
        Assert.Equal(n, length);
        var target = (byte[])previous.Clone();
        PageDeltaCodec.Decode(encoded.AsSpan(0, n), target);

        Assert.Equal(current, target);
        Assert.True(n <= PageDeltaCodec.MaxEncoderOutput);
    }

    [Fact]
    public void Encode_UnchangedPage_IsOneZeroOctet()
    {
        var page = LegacyTestStreams.Page(1, 1);
        var encoded = new byte[PageDeltaCodec.MaxEncoderOutput];
        Assert.Equal(1, PageDeltaCodec.Encode(page, page, encoded));
        Assert.Equal(0, encoded[0]);
    }

    [Fact]
    public void Encode_WithoutPreviousCopy_IsAFullPage()
    {
        var page = LegacyTestStreams.Page(1, 1);
        var encoded = new byte[PageDeltaCodec.MaxEncoderOutput];
        Assert.Equal(4097, PageDeltaCodec.Encode(default, page, encoded));
        Assert.Equal(0x80, encoded[0]);
    }

    [Fact]
    public void Encode_OneChangedWord_UsesSkipAndCopyRuns()
    {
        var previous = new byte[4096];
        var current = new byte[4096];
        current[8] = 1;
        var encoded = new byte[PageDeltaCodec.MaxEncoderOutput];
        var n = PageDeltaCodec.Encode(previous, current, encoded);

        // skip 2 words, copy 1 word (4 octets), then skips of 127 words until the page is covered
        Assert.Equal(new byte[] { 0x82, 0x01, 1, 0, 0, 0 }, encoded[..6]);
        Assert.True(n < 20);
    }

    [Theory]
    [InlineData(new byte[] { 0x01 }, "NeedMoreData")]
    [InlineData(new byte[] { 0x80, 1, 2 }, "NeedMoreData")]
    [InlineData(new byte[] { 0x81, 0x00 }, "InvalidData")]
    [InlineData(new byte[] { 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF }, "InvalidData")]
    public void Measure_TruncatedZeroRunOrOvershoot_IsReported(byte[] input, string expected)
    {
        var status = PageDeltaCodec.TryMeasure(input, out _, out var error);
        Assert.Equal(expected, status.ToString());
        Assert.Equal(expected == "InvalidData", error is not null);
    }

    [Fact]
    public void CompressedPages_EncodingsSplitAtAnyOffset_DecodeTheSame()
    {
        var previous = new[] { LegacyTestStreams.Page(1, 1), LegacyTestStreams.Page(2, 1), LegacyTestStreams.Page(3, 1) };
        var current = new[] { Mutate(previous[0], [5, 900, 3000]), previous[1], LegacyTestStreams.Page(3, 9) };
        var stream = new List<byte>();
        var buffer = new byte[PageDeltaCodec.MaxEncoderOutput];
        for (var i = 0; i < 3; i++)
        {
            var n = PageDeltaCodec.Encode(i == 2 ? default : previous[i], current[i], buffer);
            stream.AddRange(buffer[..n]);
        }

        var all = stream.ToArray();
        var committed = new MemorySink();
        committed.PageBatch([1, 2, 3], [.. previous[0], .. previous[1], .. previous[2]]);
        foreach (var split in Enumerable.Range(0, all.Length + 1).Where(s => s % 61 == 0 || s < 8 || Math.Abs(s - 4097) < 4))
        {
            using var spool = new LegacyCheckpointSpool();
            using var pages = new LegacyCompressedPages();
            pages.Announce([1, 2, 3]);
            Assert.Null(pages.Feed(all.AsSpan(0, split), spool, committed));
            Assert.Null(pages.Feed(all.AsSpan(split), spool, committed));
            Assert.Equal(0, pages.Pending);
            Assert.Equal(0, pages.Carry);
            var result = new MemorySink();
            spool.BatchEntries([1, 2, 3]);
            spool.Replay(result);
            Assert.Equal(current[0], result.Memory[1]);
            Assert.Equal(current[1], result.Memory[2]);
            Assert.Equal(current[2], result.Memory[3]);
        }
    }

    [Fact]
    public void CompressedPages_DeltaForAPageNeverReceived_IsRejected()
    {
        using var spool = new LegacyCheckpointSpool();
        using var pages = new LegacyCompressedPages();
        pages.Announce([7]);
        var problem = pages.Feed([0x00], spool, new MemorySink());
        Assert.Contains("no earlier content of that pfn", problem);
    }

    [Fact]
    public void CompressedPages_MoreEncodingsThanEntries_IsRejected()
    {
        using var spool = new LegacyCheckpointSpool();
        using var pages = new LegacyCompressedPages();
        var problem = pages.Feed([0x80, .. new byte[4096]], spool, new MemorySink());
        Assert.Contains("more pages than the batches announced", problem);
    }
}

public class LegacyFuzzProperties
{
    private static void OnlyStreamErrors(byte[] bytes, int width, GuestType guest, CheckpointedMode mode)
    {
        try
        {
            LegacyTestStreams.Restore(bytes, width, guest, mode, LegacyDeviceModelHandling.IfPresent, 4096);
        }
        catch (Exception e) when (e is Xmig.Formats.StreamFormatException or LegacyUnsupportedContentException)
        {
        }
    }

    [Property(MaxTest = 300)]
    public void Restore_ArbitraryBytes_RaiseOnlyStreamErrors(byte[] bytes, bool wide, bool pv, byte mode)
    {
        OnlyStreamErrors(bytes ?? [], wide ? 8 : 4, pv ? GuestType.Pv : GuestType.Hvm, (CheckpointedMode)(mode % 3));
    }

    [Property(MaxTest = 150)]
    public void Restore_MutatedVector_RaisesOnlyStreamErrors(int which, int[] positions, byte value)
    {
        var v = LegacyVectors.All[Math.Abs(which % LegacyVectors.All.Count)];
        var bytes = File.ReadAllBytes(v.Path);
        var offset = v.Xl ? LegacyVectorTests.LegacyXlHeaderLength(bytes) : 0;
        bytes = bytes[offset..];
        foreach (var p in positions ?? [])
        {
            // Mutate mostly the structure (first and last octets of pages are headers and tails).
            var at = Math.Abs(p % Math.Min(bytes.Length, 8192));
            bytes[p % 2 == 0 ? at : bytes.Length - 1 - at] = value;
        }

        OnlyStreamErrors(bytes, v.Width / 8, v.GuestType, CheckpointedMode.Yes);
    }

    [Property(MaxTest = 50)]
    public void Restore_PrefixOfPvHeaderThenArbitraryBody_RaisesOnlyStreamErrors(byte[] body)
    {
        var bytes = new RawLegacy().PvHeader().Bytes(body ?? []).ToArray();
        OnlyStreamErrors(bytes, 8, GuestType.Pv, CheckpointedMode.Auto);
    }
}
