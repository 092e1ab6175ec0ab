using System.Buffers;
using Xmig.Formats;

namespace Xmig.Conversion;

/// <summary>
/// Holds a blob of unknown size (a device-model record waiting for its place in the output): in memory up to
/// <see cref="MemoryLimit"/>, beyond that in a temporary file deleted on close.
/// </summary>
internal sealed class SpillBuffer(string? directory) : IDisposable
{
    public const int MemoryLimit = 8 << 20;

    private MemoryStream _memory = new();
    private FileStream? _file;

    public long Length => _file?.Length ?? _memory.Length;

    public void Reset()
    {
        _memory = new MemoryStream();
        _file?.SetLength(0);
    }

    public void CopyFrom(Stream data)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(1 << 16);
        try
        {
            int n;
            while ((n = data.Read(buffer, 0, buffer.Length)) > 0)
            {
                Target(n).Write(buffer, 0, n);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    public void CopyTo(OutputBuffer output)
    {
        Stream source = _file is not null ? _file : _memory;
        source.Position = 0;
        var buffer = ArrayPool<byte>.Shared.Rent(1 << 16);
        try
        {
            int n;
            while ((n = source.Read(buffer, 0, buffer.Length)) > 0)
            {
                output.Write(buffer.AsSpan(0, n));
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private Stream Target(int adding)
    {
        if (_file is not null)
        {
            return _file;
        }

        if (_memory.Length + adding <= MemoryLimit)
        {
            return _memory;
        }

        _file = new FileStream(
            Path.Combine(directory ?? Path.GetTempPath(), $"xmig-dm-{Guid.NewGuid():N}.tmp"),
            FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, 1 << 16, FileOptions.DeleteOnClose);
        _memory.Position = 0;
        _memory.CopyTo(_file);
        _memory = new MemoryStream();
        return _file;
    }

    public void Dispose()
    {
        _file?.Dispose();
        _memory.Dispose();
    }
}
