using Xmig.Formats;
using Xmig.Formats.Libxc;
using Xmig.Samples;

namespace Xmig.Benchmarks;

/// <summary>
/// Large inputs for the benchmarks, written once into <c>$XMIG_BENCH_DIR</c> (default <c>/tmp/xmig-bench</c>)
/// and reused, so that a run measures xmig and not the generator. Reading them right after writing keeps them
/// in the page cache.
/// </summary>
internal static class BenchData
{
    public const long GiB = 1L << 30;

    public static string Directory { get; } =
        Environment.GetEnvironmentVariable("XMIG_BENCH_DIR") is { Length: > 0 } dir ? dir : "/tmp/xmig-bench";

    /// <summary>A libxl v2 stream of an HVM guest carrying <paramref name="bytes"/> of page data.</summary>
    public static string V2Libxl(long bytes = GiB) => Ensure($"v2-hvm-{bytes >> 20}m.libxl", path =>
    {
        using var file = File.Create(path);
        SampleStreams.Write(file, new SampleStreamOptions
        {
            Kind = StreamKind.Libxl,
            Guest = GuestType.Hvm,
            Pages = bytes / 4096,
        });
    });

    /// <summary>
    /// A bare libxc v2 stream of the same guest: Xen's <c>verify-stream-v2</c> under Python 3 rejects every non-empty
    /// EMULATOR_XENSTORE_DATA, so comparisons with it use this one.
    /// </summary>
    public static string V2Libxc(long bytes = GiB) => Ensure($"v2-hvm-{bytes >> 20}m.libxc", path =>
    {
        using var file = File.Create(path);
        SampleStreams.Write(file, new SampleStreamOptions
        {
            Kind = StreamKind.Libxc,
            Guest = GuestType.Hvm,
            Pages = bytes / 4096,
        });
    });

    /// <summary>Creates <paramref name="name"/> with <paramref name="write"/> unless it exists already.</summary>
    public static string Ensure(string name, Action<string> write)
    {
        System.IO.Directory.CreateDirectory(Directory);
        var path = Path.Combine(Directory, name);
        if (!File.Exists(path))
        {
            var temp = path + ".tmp";
            write(temp);
            File.Move(temp, path, overwrite: true);
        }

        return path;
    }

    /// <summary>Creates the directory <paramref name="name"/> with <paramref name="write"/> unless it exists already.</summary>
    public static string EnsureDirectory(string name, Action<string> write)
    {
        System.IO.Directory.CreateDirectory(Directory);
        var path = Path.Combine(Directory, name);
        if (!System.IO.Directory.Exists(path))
        {
            var temp = path + ".tmp";
            if (System.IO.Directory.Exists(temp))
            {
                System.IO.Directory.Delete(temp, recursive: true);
            }

            System.IO.Directory.CreateDirectory(temp);
            write(temp);
            System.IO.Directory.Move(temp, path);
        }

        return path;
    }
}
