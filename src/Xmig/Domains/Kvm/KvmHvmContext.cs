using System.Buffers.Binary;

namespace Xmig.Domains.Kvm;

/// <summary>
/// A KVM guest's vCPU state as Xen's HVM context blob (<see cref="HvmContextBlob"/>; v2-stream.md §3.5.8): the header,
/// then per vCPU a CPU entry (<see cref="HvmHwCpu"/>), a LAPIC entry (<c>hvm_hw_lapic</c>: the APIC base MSR) and an
/// MTRR entry (<c>hvm_hw_mtrr</c>: PAT first), then the end entry. Everything a KVM test guest needs to resume fits in
/// these Xen layouts, so no KVM-only record is written.
/// </summary>
internal static class KvmHvmContext
{
    public const ushort TypeLapic = 5;
    public const ushort TypeMtrr = 14;
    public const int LapicSize = 32;   // apic_base_msr, disabled, timer_divisor, tdt_msr, pending_esr, padding
    public const int MtrrSize = 240;   // msr_pat_cr, 16 variable, 11 fixed, cap, def_type

    public static byte[] Build(IReadOnlyList<KvmCpuState> vcpus, uint gtscKhz, uint cpuidEax)
    {
        const int D = HvmContextBlob.DescriptorSize;
        var size = D + HvmContextBlob.HeaderBodySize + (vcpus.Count * (3 * D + HvmHwCpu.Size + LapicSize + MtrrSize)) + D;
        var blob = new byte[size];
        var span = blob.AsSpan();
        var at = Descriptor(span, HvmContextBlob.TypeHeader, 0, HvmContextBlob.HeaderBodySize);
        BinaryPrimitives.WriteUInt32LittleEndian(span[at..], HvmContextBlob.Magic);
        BinaryPrimitives.WriteUInt32LittleEndian(span[(at + 4)..], HvmContextBlob.Version);
        BinaryPrimitives.WriteUInt32LittleEndian(span[(at + 16)..], cpuidEax);
        BinaryPrimitives.WriteUInt32LittleEndian(span[(at + 20)..], gtscKhz);
        at += HvmContextBlob.HeaderBodySize;

        // Xen writes entries grouped by type code, instances in vCPU order.
        for (var i = 0; i < vcpus.Count; i++)
        {
            at += Descriptor(span[at..], HvmContextBlob.TypeCpu, (ushort)i, HvmHwCpu.Size);
            HvmHwCpu.Write(vcpus[i], span.Slice(at, HvmHwCpu.Size));
            at += HvmHwCpu.Size;
        }

        for (var i = 0; i < vcpus.Count; i++)
        {
            at += Descriptor(span[at..], TypeLapic, (ushort)i, LapicSize);
            BinaryPrimitives.WriteUInt64LittleEndian(span[at..], vcpus[i].Sregs.ApicBase);
            at += LapicSize;
        }

        for (var i = 0; i < vcpus.Count; i++)
        {
            at += Descriptor(span[at..], TypeMtrr, (ushort)i, MtrrSize);
            BinaryPrimitives.WriteUInt64LittleEndian(span[at..], vcpus[i].Msr(KvmCpuState.MsrPat));
            at += MtrrSize;
        }

        Descriptor(span[at..], HvmContextBlob.TypeEnd, 0, 0);
        return blob;
    }

    /// <summary>
    /// Reads the vCPU states out of an HVM context blob: one per CPU entry, instances 0 … n − 1 all present. Throws
    /// <see cref="InvalidDataException"/> saying what is wrong.
    /// </summary>
    public static KvmCpuState[] Parse(ReadOnlySpan<byte> blob)
    {
        var problem = HvmContextBlob.Validate(blob);
        if (problem != null)
        {
            throw new InvalidDataException($"HVM context: {problem}");
        }

        var count = HvmContextBlob.CountVcpus(blob);
        if (count == 0)
        {
            throw new InvalidDataException("HVM context has no CPU entry");
        }

        var states = new KvmCpuState?[count];
        var at = 0;
        while (true)
        {
            var type = BinaryPrimitives.ReadUInt16LittleEndian(blob[at..]);
            var instance = BinaryPrimitives.ReadUInt16LittleEndian(blob[(at + 2)..]);
            var length = (int)BinaryPrimitives.ReadUInt32LittleEndian(blob[(at + 4)..]);
            var body = blob.Slice(at + HvmContextBlob.DescriptorSize, length);
            at += HvmContextBlob.DescriptorSize + length;
            if (type == HvmContextBlob.TypeEnd)
            {
                break;
            }

            if (type is not (HvmContextBlob.TypeCpu or TypeLapic or TypeMtrr) || instance >= count)
            {
                continue;
            }

            var state = states[instance] ??= GuestLayout.InitialState(instance);
            switch (type)
            {
                case HvmContextBlob.TypeCpu:
                    HvmHwCpu.Read(body, state);
                    break;
                case TypeLapic when length >= 8:
                    state.Sregs.ApicBase = BinaryPrimitives.ReadUInt64LittleEndian(body);
                    break;
                case TypeMtrr when length >= 8:
                    state.SetMsr(KvmCpuState.MsrPat, BinaryPrimitives.ReadUInt64LittleEndian(body));
                    break;
            }
        }

        var result = new KvmCpuState[count];
        for (var i = 0; i < count; i++)
        {
            result[i] = states[i] ?? throw new InvalidDataException($"HVM context has no CPU entry for vCPU {i}");
        }

        return result;
    }

    private static int Descriptor(Span<byte> span, ushort type, ushort instance, int length)
    {
        BinaryPrimitives.WriteUInt16LittleEndian(span, type);
        BinaryPrimitives.WriteUInt16LittleEndian(span[2..], instance);
        BinaryPrimitives.WriteUInt32LittleEndian(span[4..], (uint)length);
        return HvmContextBlob.DescriptorSize;
    }
}
