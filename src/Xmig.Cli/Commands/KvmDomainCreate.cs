using System.Globalization;
using Xmig.Domains;
using Xmig.Domains.Kvm;

namespace Xmig.Cli.Commands;

/// <summary><c>xmig domain create DIR --backend kvm --program counter|dirty:WSS:RATE --memory SIZE [--vcpus N]</c>.</summary>
internal static class KvmDomainCreate
{
    public static ExitCode Run(CliContext ctx, string path, string? type, string? programText, ulong bytes, int vcpus)
    {
        if (type is not (null or "hvm"))
        {
            return EngineCommand.Usage(ctx, "a KVM guest is an hvm guest (--type hvm or no --type)");
        }

        if (!GuestProgram.TryParse(programText, out var program, out var problem))
        {
            return EngineCommand.Usage(ctx, problem);
        }

        problem = KvmDomain.Validate(program, bytes, vcpus);
        if (problem != null)
        {
            return EngineCommand.Usage(ctx, problem);
        }

        var unavailable = KvmProbe.UnavailableReason;
        if (unavailable != null)
        {
            ctx.Error.WriteLine($"xmig: error: KVM is not usable here: {unavailable}");
            return ExitCode.UsageOrIo;
        }

        using var domain = KvmDomain.Create(path, program, bytes, vcpus);
        ctx.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"created kvm domain {path}: {ByteSize.Format(bytes)}, {vcpus} vCPU(s), program {program}, p2m size 0x{domain.P2mSize:X}{(domain.ManualDirtyProtect ? ", KVM_CLEAR_DIRTY_LOG" : "")}"));
        return ExitCode.Ok;
    }
}
