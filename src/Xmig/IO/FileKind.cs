using System.Runtime.InteropServices;

namespace Xmig.IO;

/// <summary>What kind of file a path names (symbolic links followed), from statx(2), whose layout is the same on every architecture.</summary>
internal static unsafe partial class FileKind
{
    private const int AtFdCwd = -100;
    private const uint StatxType = 0x1;
    private const int ModeOffset = 28;
    private const ushort TypeMask = 0xF000;
    private const ushort Regular = 0x8000;

    /// <summary>
    /// True when <paramref name="path"/> exists and is not a regular file (a device such as <c>/dev/full</c>, a FIFO, a
    /// socket, a directory): a file an output must not be renamed onto. False when it is absent or regular, or when the
    /// system cannot say.
    /// </summary>
    public static bool IsSpecial(string path)
    {
        var buffer = stackalloc byte[256];
        if (Statx(AtFdCwd, path, 0, StatxType, buffer) != 0)
        {
            return false;
        }

        var mode = *(ushort*)(buffer + ModeOffset);
        return (mode & TypeMask) != Regular;
    }

    [LibraryImport("libc", EntryPoint = "statx", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Statx(int dirfd, string path, int flags, uint mask, byte* buffer);
}
