using System.Diagnostics;
using System.Text.Json;
using Xmig.Domains;
using Xmig.Tests.Domains;
using Xmig.Tests.Support;

namespace Xmig.Tests.Restore;

[Trait("Category", XmigProcess.Category)]
public class SaveRestoreCommandTests
{
    [Theory]
    [InlineData("hvm", "xl", "0")]
    [InlineData("pv", "libxl", "2")]
    [InlineData("hvm", "libxc", "3")]
    public void SaveThenRestore_Json_ReportsDigestOfTheSavedImage(string guest, string kind, string checkpoints)
    {
        using var tmp = new TempDirectory();
        var (code, _, stderr) = DomainTestSupport.Cli("domain", "create", tmp["d"], "--type", guest, "--memory", "16MiB", "--vcpus", "2");
        Assert.True(code == 0, stderr);
        (code, var saveOut, stderr) = DomainTestSupport.Cli("save", tmp["d"], "-o", tmp["s.bin"], "--stream", kind, "--checkpoints", checkpoints,
            "--workload", "uniform:50", "--interval", "10", "--json");
        Assert.True(code == 0, stderr);
        using var save = JsonDocument.Parse(saveOut);
        Assert.Equal(kind, save.RootElement.GetProperty("stream_kind").GetString());

        (code, var restoreOut, stderr) = DomainTestSupport.Cli("restore", tmp["s.bin"], "--into", tmp["r"], "--json");
        Assert.True(code == 0, stderr);
        using var restore = JsonDocument.Parse(restoreOut);
        var r = restore.RootElement;
        Assert.Equal(save.RootElement.GetProperty("memory_sha256").GetString(), r.GetProperty("memory_sha256").GetString());
        Assert.Equal(save.RootElement.GetProperty("pages").GetUInt64(), r.GetProperty("pages").GetUInt64());
        Assert.Equal(int.Parse(checkpoints, System.Globalization.CultureInfo.InvariantCulture), r.GetProperty("checkpoints_seen").GetInt32());
        Assert.Equal(int.Parse(checkpoints, System.Globalization.CultureInfo.InvariantCulture), r.GetProperty("checkpoint_committed").GetInt32());
        Assert.Equal(kind, r.GetProperty("stream_kind").GetString());
        Assert.Equal("xen-4.22", r.GetProperty("sender_generation").GetString());

        // The saved domain's directory was left as the stream's final image, and so was the restored one.
        (code, var digest, _) = DomainTestSupport.Cli("domain", "digest", tmp["d"]);
        Assert.Equal(0, code);
        Assert.StartsWith(r.GetProperty("memory_sha256").GetString()!, digest);
        (code, digest, _) = DomainTestSupport.Cli("domain", "digest", tmp["r"]);
        Assert.Equal(0, code);
        Assert.StartsWith(r.GetProperty("memory_sha256").GetString()!, digest);
    }

    [Theory]
    [InlineData("truncate")]
    [InlineData("corrupt")]
    [InlineData("empty")]
    public void MalformedStream_ExitsInvalid_NamesRecordAndOffset_LeavesNothing(string damage)
    {
        using var tmp = new TempDirectory();
        Assert.Equal(0, DomainTestSupport.Cli("domain", "create", tmp["d"], "--type", "pv", "--memory", "16MiB").Code);
        Assert.Equal(0, DomainTestSupport.Cli("save", tmp["d"], "-o", tmp["s.bin"], "--stream", "libxl").Code);
        var bytes = File.ReadAllBytes(tmp["s.bin"]);
        var damaged = damage switch
        {
            "truncate" => bytes[..(bytes.Length / 2)],
            "empty" => [],
            _ => Corrupt(bytes),
        };
        var input = Path.Combine(tmp.Path, "bad.bin");
        File.WriteAllBytes(input, damaged);
        var outputs = Path.Combine(tmp.Path, "out");
        Directory.CreateDirectory(outputs);

        var (code, stdout, stderr) = DomainTestSupport.Cli("restore", input, "--into", Path.Combine(outputs, "r"), "--json");
        Assert.Equal(1, code);
        Assert.Equal("", stdout);
        var line = Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("xmig: error: ", line);
        Assert.Contains("offset 0x", line);
        Assert.Empty(Directory.EnumerateFileSystemEntries(outputs));
    }

    [Theory]
    [InlineData("hvm", "legacy-4.1")]
    [InlineData("pv", "legacy-4.0")]
    public void LegacySave_ConvertsWithTheConverter_AndEveryRouteRestoresTheSameDigest(string guest, string kind)
    {
        using var tmp = new TempDirectory();
        Assert.Equal(0, DomainTestSupport.Cli("domain", "create", tmp["d"], "--type", guest, "--memory", "16MiB", "--vcpus", "2").Code);
        var (code, saveOut, stderr) = DomainTestSupport.Cli("save", tmp["d"], "-o", tmp["s.bin"], "--stream", kind, "--json");
        Assert.True(code == 0, stderr);
        using var save = JsonDocument.Parse(saveOut);
        var expected = save.RootElement.GetProperty("memory_sha256").GetString();

        // The legacy stream restores directly, and converts (as convert-legacy-stream) to a v2 stream that verifies
        // and restores to the same image.
        (code, var direct, stderr) = DomainTestSupport.Cli("restore", tmp["s.bin"], "--json");
        Assert.True(code == 0, stderr);
        using (var json = JsonDocument.Parse(direct))
        {
            Assert.Equal(expected, json.RootElement.GetProperty("memory_sha256").GetString());
            Assert.Equal(kind, json.RootElement.GetProperty("sender_generation").GetString());
        }

        (code, _, stderr) = DomainTestSupport.Cli("convert", "-i", tmp["s.bin"], "-o", tmp["s.v2"], "-w", "64", "-g", guest, "-f", "libxl");
        Assert.True(code == 0, stderr);
        (code, _, stderr) = DomainTestSupport.Cli("verify", tmp["s.v2"]);
        Assert.True(code == 0, stderr);
        (code, var converted, stderr) = DomainTestSupport.Cli("restore", tmp["s.v2"], "--json");
        Assert.True(code == 0, stderr);
        using (var json = JsonDocument.Parse(converted))
        {
            Assert.Equal(expected, json.RootElement.GetProperty("memory_sha256").GetString());
            Assert.Equal("legacy-converter-1", json.RootElement.GetProperty("sender_generation").GetString());
        }
    }

    [Fact]
    public void Save_JsonToStdout_IsAUsageError()
    {
        using var tmp = new TempDirectory();
        Assert.Equal(0, DomainTestSupport.Cli("domain", "create", tmp["d"], "--type", "hvm", "--memory", "16MiB").Code);
        var (code, _, stderr) = DomainTestSupport.Cli("save", tmp["d"], "-o", "-", "--json");
        Assert.Equal(2, code);
        Assert.Contains("--json", stderr);
    }

    [Fact]
    public async Task ChildProcesses_SaveThroughAPipeIntoRestore_KeepTheDigest()
    {
        using var tmp = new TempDirectory();
        var (code, _, stderr) = DomainTestSupport.CliProcess("domain", "create", tmp["d"], "--type", "hvm", "--memory", "32MiB", "--seed", "8");
        Assert.True(code == 0, stderr);
        using var source = SimulatedDomain.Open(tmp["d"]);
        var expected = MemoryDigest.Compute(source).Sha256;

        using var save = Start("save", tmp["d"], "-o", "-", "--stream", "xl", "--non-live");
        using var restore = Start("restore", "-", "--json");
        var restoreOut = restore.StandardOutput.ReadToEndAsync();
        var restoreErr = restore.StandardError.ReadToEndAsync();
        var saveErr = save.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        await save.StandardOutput.BaseStream.CopyToAsync(restore.StandardInput.BaseStream, timeout.Token);
        restore.StandardInput.Close();
        await save.WaitForExitAsync(timeout.Token);
        await restore.WaitForExitAsync(timeout.Token);
        Assert.True(save.ExitCode == 0, await saveErr);
        Assert.True(restore.ExitCode == 0, await restoreErr);
        using var json = JsonDocument.Parse(await restoreOut);
        Assert.Equal(expected, json.RootElement.GetProperty("memory_sha256").GetString());
        Assert.Equal("xl", json.RootElement.GetProperty("stream_kind").GetString());
    }

    private static byte[] Corrupt(byte[] bytes)
    {
        // Walk the libxc records (libxl header 16 + LIBXC_CONTEXT 8 + image header 24 + domain header 16) to the
        // first PAGE_DATA and give it an impossible count.
        var copy = (byte[])bytes.Clone();
        var at = 64;
        while (BitConverter.ToUInt32(copy, at) != 1)
        {
            at += 8 + (int)((BitConverter.ToUInt32(copy, at + 4) + 7) & ~7u);
        }

        BitConverter.TryWriteBytes(copy.AsSpan(at + 8), 70000u);
        return copy;
    }

    private static Process Start(params string[] args) => XmigProcess.Start(redirectStdin: true, args);
}
