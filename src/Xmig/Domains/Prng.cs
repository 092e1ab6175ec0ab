using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.InteropServices;

namespace Xmig.Domains;

/// <summary>
/// Small deterministic generators for simulated content: SplitMix64 to derive independent values from
/// (seed, index) pairs, xoshiro256** to fill pages. Not for cryptography; the same output for the same seed on every little-endian host.
/// </summary>
internal struct Prng
{
    private ulong _s0;
    private ulong _s1;
    private ulong _s2;
    private ulong _s3;

    public Prng(ulong seed)
    {
        var x = seed;
        _s0 = SplitMix(ref x);
        _s1 = SplitMix(ref x);
        _s2 = SplitMix(ref x);
        _s3 = SplitMix(ref x);
    }

    /// <summary>A well-mixed 64-bit value from a seed and up to two indices.</summary>
    public static ulong Mix(ulong seed, ulong a, ulong b = 0)
    {
        var x = seed ^ (a * 0x9E3779B97F4A7C15UL) ^ BitOperations.RotateLeft(b * 0xC2B2AE3D27D4EB4FUL, 31);
        return SplitMix(ref x);
    }

    public ulong Next()
    {
        var result = BitOperations.RotateLeft(_s1 * 5, 7) * 9;
        var t = _s1 << 17;
        _s2 ^= _s0;
        _s3 ^= _s1;
        _s1 ^= _s2;
        _s0 ^= _s3;
        _s2 ^= t;
        _s3 = BitOperations.RotateLeft(_s3, 45);
        return result;
    }

    /// <summary>A value in [0, bound).</summary>
    public ulong Next(ulong bound) => bound == 0 ? 0 : (ulong)(((UInt128)Next() * bound) >> 64);

    /// <summary>Fills <paramref name="destination"/> with pseudo-random octets.</summary>
    public void Fill(Span<byte> destination)
    {
        var words = MemoryMarshal.Cast<byte, ulong>(destination);
        for (var i = 0; i < words.Length; i++)
        {
            words[i] = Next();
        }

        var tail = destination[(words.Length * 8)..];
        if (!tail.IsEmpty)
        {
            Span<byte> last = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(last, Next());
            last[..tail.Length].CopyTo(tail);
        }
    }

    private static ulong SplitMix(ref ulong x)
    {
        x += 0x9E3779B97F4A7C15UL;
        var z = x;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
