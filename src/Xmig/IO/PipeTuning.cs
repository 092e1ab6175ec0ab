using System.IO.Pipes;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Xmig.IO;

/// <summary>
/// Linux pipes default to 64 KiB, which caps a reader at a few hundred MB/s through context switches. Growing the
/// pipe to 1 MiB (the default <c>/proc/sys/fs/pipe-max-size</c>) lets each read return a whole page batch.
/// Best effort: on other systems, or when the limit is lower, nothing changes.
/// </summary>
public static partial class PipeTuning
{
    public const int PreferredSize = 1 << 20;

    private const int FSetPipeSz = 1031;

    /// <summary>Grows the pipe behind <paramref name="stream"/> if it is one. Returns the new capacity, or 0.</summary>
    public static int TryGrow(Stream stream, int size = PreferredSize)
    {
        SafeHandle? handle = stream switch
        {
            FileStream fs => fs.SafeFileHandle,
            PipeStream ps => ps.SafePipeHandle,
            _ => null,
        };
        return handle is null ? 0 : TryGrow(handle, size);
    }

    /// <summary>Grows the pipe behind <paramref name="handle"/> if it is one. Returns the new capacity, or 0.</summary>
    public static int TryGrow(SafeHandle handle, int size = PreferredSize)
    {
        if (!OperatingSystem.IsLinux() || handle.IsInvalid)
        {
            return 0;
        }

        var fd = (int)handle.DangerousGetHandle();
        var result = Fcntl(fd, FSetPipeSz, size);
        return result < 0 ? 0 : result;
    }

    /// <summary>Standard input as a stream, with its pipe grown when it is a pipe.</summary>
    public static Stream OpenStandardInput()
    {
        var stream = new FileStream(new SafeFileHandle(0, ownsHandle: false), FileAccess.Read, 1);
        TryGrow(stream);
        return stream;
    }

    /// <summary>Standard output as a stream, with its pipe grown when it is a pipe.</summary>
    public static Stream OpenStandardOutput()
    {
        var stream = new FileStream(new SafeFileHandle(1, ownsHandle: false), FileAccess.Write, 1);
        TryGrow(stream);
        return stream;
    }

    [LibraryImport("libc", EntryPoint = "fcntl", SetLastError = true)]
    private static partial int Fcntl(int fd, int command, int argument);
}
