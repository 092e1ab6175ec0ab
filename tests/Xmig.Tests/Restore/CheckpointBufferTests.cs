using Xmig.Restore;

namespace Xmig.Tests.Restore;

/// <summary>The one checkpoint buffer of both stream generations: memory up to a limit, then a temporary file.</summary>
public sealed class CheckpointBufferTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("xmig-cpbuf-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static byte[] Item(int length, byte seed)
    {
        var data = new byte[length];
        for (var i = 0; i < data.Length; i++)
        {
            data[i] = (byte)(seed + (i * 7));
        }

        return data;
    }

    [Fact]
    public void BelowTheMemoryLimit_StaysInMemory_NoFileIsMade()
    {
        using var buffer = new CheckpointBuffer(_dir, limit: 1 << 20, memoryLimit: 4096);
        buffer.BeginItem(1, 0x100);
        buffer.Write(Item(4000, 1));

        Assert.False(buffer.Spilled);
        Assert.Empty(Directory.GetFiles(_dir));
        Assert.Equal(4000, buffer.Length);
    }

    [Fact]
    public void PastTheMemoryLimit_SpillsToATempFile_ReadsBackTheSameOctets_AndTheFileGoesOnDispose()
    {
        var first = Item(3000, 1);
        var second = Item(5000, 2);
        var third = Item(123, 3);
        var buffer = new CheckpointBuffer(_dir, limit: 1 << 20, memoryLimit: 4096);
        buffer.BeginItem(7, 0x1000);
        buffer.Write(first);
        buffer.BeginItem(8, 0x2000);
        buffer.Write(second);
        buffer.BeginItem(9, 0x3000);
        buffer.Write(third);

        Assert.True(buffer.Spilled);
        Assert.Single(Directory.GetFiles(_dir));
        Assert.Equal(first.Length + second.Length + third.Length, buffer.Length);

        using (var read = buffer.OpenRead())
        using (var copy = new MemoryStream())
        {
            read.CopyTo(copy);
            Assert.Equal([.. first, .. second, .. third], copy.ToArray());
        }

        var middle = new byte[10];
        buffer.ReadAt(first.Length + 100, middle);
        Assert.Equal(second.AsSpan(100, 10).ToArray(), middle);

        // Each octet maps back to the item (record index and stream offset) it arrived in.
        Assert.Equal(new CheckpointItemOrigin(7, 0x1000, 0), buffer.OriginAt(0));
        Assert.Equal(new CheckpointItemOrigin(8, 0x2000, first.Length), buffer.OriginAt(first.Length + 4999));
        Assert.Equal(new CheckpointItemOrigin(9, 0x3000, first.Length + second.Length), buffer.OriginAt(buffer.Length - 1));

        buffer.Dispose();
        Assert.Empty(Directory.GetFiles(_dir));
    }

    [Fact]
    public void Clear_EmptiesASpilledBuffer_ForTheNextCheckpoint()
    {
        using var buffer = new CheckpointBuffer(_dir, limit: 1 << 20, memoryLimit: 16);
        buffer.BeginItem(1, 0);
        buffer.Write(Item(100, 4));
        buffer.Clear();

        Assert.Equal(0, buffer.Length);
        Assert.Equal(0, buffer.Count);
        Assert.Null(buffer.OriginAt(0));
        buffer.BeginItem(2, 0x40);
        buffer.Write(Item(50, 5));
        using var copy = new MemoryStream();
        buffer.OpenRead().CopyTo(copy);
        Assert.Equal(Item(50, 5), copy.ToArray());
    }

    [Fact]
    public void WouldExceed_TellsTheCallerBeforeTheLimitIsCrossed()
    {
        using var buffer = new CheckpointBuffer(_dir, limit: 100);
        buffer.BeginItem(1, 0);
        buffer.Write(Item(60, 6));

        Assert.False(buffer.WouldExceed(40));
        Assert.True(buffer.WouldExceed(41));
    }
}
