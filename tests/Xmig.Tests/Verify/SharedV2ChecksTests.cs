using System.Buffers.Binary;
using Xmig.Formats;
using Xmig.Formats.Libxc;
using Xmig.Formats.Libxl;
using Xmig.Fuzz;
using Xmig.Restore;
using Xmig.Samples;
using Xmig.Verify;

namespace Xmig.Tests.Verify;

/// <summary>
/// Issue 7 §6: verify and restore share one set of v2 record checks (<see cref="V2RecordChecks"/>). Each case below
/// was once a disagreement (restore took what verify refused, or the other way round); now both refuse it.
/// </summary>
public class SharedV2ChecksTests
{
    public static TheoryData<string> Defects => new()
    {
        "pfn-reserved-bit-52",
        "libxl-reserved-option-bit",
        "image-header-reserved-field",
        "domain-header-reserved-field",
        "tsc-info-reserved-field",
        "page-data-reserved-field",
        "end-body-not-empty",
        "emulator-id-3",
        "unknown-optional-libxl-record",
        "hvm-params-index-64",
        "hvm-without-hvm-context",
        "non-zero-record-padding",
    };

    [Fact]
    public void TheUnmutatedSample_VerifiesAndRestores()
    {
        var data = Sample();
        Assert.Null(StreamVerifier.Verify(new MemoryStream(data)).Error);
        Assert.Equal(FuzzOutcome.Accepted, Restore(data, out var error));
        Assert.Null(error);
    }

    [Theory]
    [MemberData(nameof(Defects))]
    public void AStreamWithTheDefect_IsRefusedByVerifyAndByRestore(string defect)
    {
        var data = Apply(Sample(), defect);
        var verified = StreamVerifier.Verify(new MemoryStream(data));
        Assert.NotNull(verified.Error);
        Assert.NotEqual(FuzzOutcome.Accepted, Restore(data, out var error));
        Assert.NotNull(error);
        Assert.Equal((Disagreement.None, ""), Differential.Check(data));
    }

    private static byte[] Sample() =>
        SampleStreams.Create(new SampleStreamOptions { Kind = StreamKind.Libxl, Guest = GuestType.Hvm, Pages = 4, Vcpus = 1 });

    private static FuzzOutcome Restore(byte[] data, out StreamFormatException? error) =>
        FuzzTargets.RestoreBytes(new MemoryStream(data, writable: false), CheckpointedMode.Auto, out error, out _, RestoreOptions.DefaultMaxGuestPhysicalBytes);

    private static byte[] Apply(byte[] data, string defect)
    {
        const int ImageHeader = 24; // libxl header (16) + LIBXC_CONTEXT record header (8)
        const int DomainHeader = ImageHeader + 24;
        switch (defect)
        {
            case "pfn-reserved-bit-52":
                data[Libxc(data, RecordType.PageData).Body + 8 + 6] |= 0x10;
                return data;
            case "libxl-reserved-option-bit":
                data[15] |= 0x04; // options, big-endian u32 at offset 12: bit 2
                return data;
            case "image-header-reserved-field":
                data[ImageHeader + 19] = 1;
                return data;
            case "domain-header-reserved-field":
                data[DomainHeader + 6] = 1;
                return data;
            case "tsc-info-reserved-field":
                data[Libxc(data, RecordType.X86TscInfo).Body + 20] = 1;
                return data;
            case "page-data-reserved-field":
                data[Libxc(data, RecordType.PageData).Body + 4] = 1;
                return data;
            case "end-body-not-empty":
                {
                    var end = Libxc(data, RecordType.End);
                    BinaryPrimitives.WriteUInt32LittleEndian(data.AsSpan(end.At + 4), 8);
                    return [.. data[..end.Body], .. new byte[8], .. data[end.Body..]];
                }

            case "emulator-id-3":
                BinaryPrimitives.WriteUInt32LittleEndian(data.AsSpan(Libxl(data, LibxlRecordType.EmulatorContext).Body), 3);
                return data;
            case "unknown-optional-libxl-record":
                BinaryPrimitives.WriteUInt32LittleEndian(data.AsSpan(Libxl(data, LibxlRecordType.EmulatorContext).At), 0x80000010);
                return data;
            case "hvm-params-index-64":
                BinaryPrimitives.WriteUInt64LittleEndian(data.AsSpan(Libxc(data, RecordType.HvmParams).Body + 8), 64);
                return data;
            case "hvm-without-hvm-context":
                // An unknown optional libxc record is skipped by both; what is left has no HVM_CONTEXT.
                BinaryPrimitives.WriteUInt32LittleEndian(data.AsSpan(Libxc(data, RecordType.HvmContext).At), 0x80000100);
                return data;
            case "non-zero-record-padding":
                {
                    var context = Libxc(data, RecordType.HvmContext);
                    if (context.Length % 8 == 0)
                    {
                        // Shrink the body by one octet: its last octet becomes padding.
                        BinaryPrimitives.WriteUInt32LittleEndian(data.AsSpan(context.At + 4), context.Length - 1);
                        data[context.Body + (int)context.Length - 1] = 0xAA;
                    }
                    else
                    {
                        data[context.Body + (int)context.Length] = 0xAA;
                    }

                    return data;
                }

            default:
                throw new ArgumentOutOfRangeException(nameof(defect));
        }
    }

    private static (int At, int Body, uint Length) Libxc(byte[] data, RecordType type)
    {
        var at = ImageHeaderEnd + 16; // image header (24) and domain header (16)
        while (true)
        {
            var t = BinaryPrimitives.ReadUInt32LittleEndian(data.AsSpan(at));
            var length = BinaryPrimitives.ReadUInt32LittleEndian(data.AsSpan(at + 4));
            if (t == (uint)type)
            {
                return (at, at + 8, length);
            }

            if (t == (uint)RecordType.End)
            {
                throw new InvalidOperationException($"no {type} record");
            }

            at += 8 + (int)((length + 7) & ~7u);
        }
    }

    private static (int At, int Body, uint Length) Libxl(byte[] data, LibxlRecordType type)
    {
        // The libxl records after the libxc stream: skip to the record after libxc END.
        var end = Libxc(data, RecordType.End);
        var at = end.Body + (int)((end.Length + 7) & ~7u);
        while (at + 8 <= data.Length)
        {
            var t = BinaryPrimitives.ReadUInt32LittleEndian(data.AsSpan(at));
            var length = BinaryPrimitives.ReadUInt32LittleEndian(data.AsSpan(at + 4));
            if (t == (uint)type)
            {
                return (at, at + 8, length);
            }

            at += 8 + (int)((length + 7) & ~7u);
        }

        throw new InvalidOperationException($"no libxl {type} record");
    }

    private const int ImageHeaderEnd = 16 + 8 + 24;
}
