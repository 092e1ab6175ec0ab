using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Xmig.Domains.Kvm;

/// <summary>
/// <c>kvm.json</c> beside a domain directory's other files: it marks the directory as a KVM guest's (the backend kind)
/// and names the program it was created with (informational: the guest's mailbox says what runs). The vCPU state is
/// not here but in <c>hvm-context.bin</c>, in Xen's layout.
/// </summary>
internal sealed class KvmDescription
{
    public const string FileName = "kvm.json";
    public const string FormatName = "xmig-kvm";
    public const int CurrentVersion = 1;

    public string? Format { get; set; }

    public int Version { get; set; }

    /// <summary>Always <c>kvm</c>.</summary>
    public string? Backend { get; set; }

    public string? Program { get; set; }

    public static void Write(string directory, string program)
    {
        var d = new KvmDescription { Format = FormatName, Version = CurrentVersion, Backend = "kvm", Program = program };
        File.WriteAllBytes(Path.Combine(directory, FileName), JsonSerializer.SerializeToUtf8Bytes(d, KvmJsonContext.Default.KvmDescription));
    }

    public static KvmDescription Read(string directory)
    {
        var path = Path.Combine(directory, FileName);
        if (!File.Exists(path))
        {
            throw new InvalidDomainException(directory, $"{FileName} is missing: not a KVM domain");
        }

        if (new FileInfo(path).Length > 1 << 16)
        {
            throw new InvalidDomainException(directory, $"{FileName} is larger than 64 KiB");
        }

        KvmDescription? d;
        try
        {
            d = JsonSerializer.Deserialize(File.ReadAllBytes(path), KvmJsonContext.Default.KvmDescription);
        }
        catch (JsonException e)
        {
            throw new InvalidDomainException(directory, $"{FileName}: {e.Message}", e);
        }

        if (d == null || d.Format != FormatName || d.Version != CurrentVersion || d.Backend != "kvm")
        {
            throw new InvalidDomainException(directory, $"{FileName}: expected format \"{FormatName}\" version {CurrentVersion}, backend \"kvm\"");
        }

        return d;
    }
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, WriteIndented = true)]
[JsonSerializable(typeof(KvmDescription))]
internal sealed partial class KvmJsonContext : JsonSerializerContext;

/// <summary>Whether this machine can run KVM guests, and if not, why.</summary>
internal static class KvmProbe
{
    private static readonly Lazy<string?> Reason = new(Probe);

    /// <summary>Null when <c>/dev/kvm</c> opens, speaks API 12 and creates a VM; else the reason it cannot be used.</summary>
    public static string? UnavailableReason => Reason.Value;

    private static unsafe string? Probe()
    {
        if (!OperatingSystem.IsLinux() || RuntimeInformation.ProcessArchitecture != Architecture.X64)
        {
            return "KVM guests need Linux on x86-64";
        }

        if (!File.Exists("/dev/kvm"))
        {
            return "/dev/kvm does not exist";
        }

        try
        {
            var page = (byte*)NativeMemory.AlignedAlloc(GuestPage.Size, GuestPage.Size);
            try
            {
                using var vm = new KvmVm(page, 1);
            }
            finally
            {
                NativeMemory.AlignedFree(page);
            }

            return null;
        }
        catch (IOException e)
        {
            return e.Message;
        }
    }
}
