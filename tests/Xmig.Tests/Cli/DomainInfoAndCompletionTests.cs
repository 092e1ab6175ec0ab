using System.Diagnostics;
using System.Text.Json;
using Xmig.Domains;
using Xmig.Tests.Domains;
using Xmig.Tests.Support;

namespace Xmig.Tests.Cli;

public class DomainInfoAndCompletionTests
{
    [Fact]
    public void DomainInfo_Json_DescribesTheDirectory()
    {
        using var tmp = new TempDirectory();
        Assert.Equal(0, DomainTestSupport.Cli("domain", "create", tmp["h"], "--type", "hvm", "--memory", "16MiB", "--vcpus", "3", "--seed", "9").Code);
        var (code, stdout, stderr) = DomainTestSupport.Cli("domain", "info", tmp["h"], "--json", "--digest");
        Assert.True(code == 0, stderr);
        using var json = JsonDocument.Parse(stdout);
        var root = json.RootElement;
        using var domain = SimulatedDomain.Open(tmp["h"]);
        Assert.Equal("hvm", root.GetProperty("type").GetString());
        Assert.Equal("simulated", root.GetProperty("backend").GetString());
        Assert.Equal(64, root.GetProperty("guest_width").GetInt32());
        Assert.Equal(16UL << 20, root.GetProperty("memory_bytes").GetUInt64());
        Assert.Equal(domain.P2mSize, root.GetProperty("p2m_size").GetUInt64());
        Assert.Equal(domain.PopulatedPages, root.GetProperty("pages").GetUInt64());
        Assert.Equal([0, 1, 2], root.GetProperty("vcpus").EnumerateArray().Select(e => e.GetInt32()));
        Assert.Equal(domain.TscInfo.Khz, root.GetProperty("tsc").GetProperty("khz").GetUInt32());
        var store = root.GetProperty("hvm_params").EnumerateArray().Single(p => p.GetProperty("name").GetString() == "StorePfn");
        Assert.Equal(domain.GetHvmParam(HvmParam.StorePfn), store.GetProperty("value").GetUInt64());
        var blobs = root.GetProperty("blobs").EnumerateArray().Select(b => b.GetProperty("name").GetString()).ToList();
        Assert.Contains(DomainDirectory.HvmContextFile, blobs);
        Assert.DoesNotContain(DomainDirectory.SharedInfoFile, blobs);
        Assert.Equal(MemoryDigest.Compute(domain).Sha256, root.GetProperty("memory_sha256").GetString());
        Assert.False(root.GetProperty("hosted").GetBoolean());

        (code, stdout, _) = DomainTestSupport.Cli("domain", "info", tmp["h"]);
        Assert.Equal(0, code);
        Assert.Contains("vcpus online       0,1,2", stdout);
        Assert.Contains("hosted             no", stdout);
        Assert.DoesNotContain("memory_sha256", stdout);
    }

    [Fact]
    public void DomainInfo_PvDomain_ListsItsVcpuBlobs_AndAMissingDirectoryIsAnError()
    {
        using var tmp = new TempDirectory();
        Assert.Equal(0, DomainTestSupport.Cli("domain", "create", tmp["p"], "--type", "pv", "--memory", "16MiB", "--vcpus", "2", "--guest-width", "32").Code);
        var (code, stdout, stderr) = DomainTestSupport.Cli("domain", "info", tmp["p"], "--json");
        Assert.True(code == 0, stderr);
        var root = JsonDocument.Parse(stdout).RootElement;
        Assert.Equal(32, root.GetProperty("guest_width").GetInt32());
        Assert.Equal(0, root.GetProperty("hvm_params").GetArrayLength());
        var blobs = root.GetProperty("blobs").EnumerateArray().Select(b => b.GetProperty("name").GetString()).ToList();
        Assert.Contains("vcpu1-basic.bin", blobs);
        Assert.Contains(DomainDirectory.SharedInfoFile, blobs);
        Assert.False(root.TryGetProperty("memory_sha256", out var sha) && sha.ValueKind != JsonValueKind.Null);

        (code, _, stderr) = DomainTestSupport.Cli("domain", "info", tmp["none"]);
        Assert.Equal(2, code);
        Assert.StartsWith("xmig: error: ", stderr);
    }

    [Trait("Category", XmigProcess.Category)]
    [Fact]
    public void DomainInfo_OfAHostedDomain_SaysHosted()
    {
        using var tmp = new TempDirectory();
        Assert.Equal(0, DomainTestSupport.Cli("domain", "create", tmp["d"], "--type", "pv", "--memory", "16MiB").Code);
        using var host = XmigProcess.Start(redirectStdin: false, "domain", "run", tmp["d"]);
        _ = host.StandardOutput.ReadToEndAsync();
        _ = host.StandardError.ReadToEndAsync();
        try
        {
            Assert.True(DomainTestSupport.WaitUntil(() => DomainTestSupport.Cli("domain", "status", tmp["d"]).Out.StartsWith("running", StringComparison.Ordinal), 60), "the host did not start");
            var (code, stdout, stderr) = DomainTestSupport.Cli("domain", "info", tmp["d"], "--json");
            Assert.True(code == 0, stderr);
            var root = JsonDocument.Parse(stdout).RootElement;
            Assert.True(root.GetProperty("hosted").GetBoolean());
            Assert.Equal("running", root.GetProperty("host_state").GetString());
            Assert.Equal(host.Id, root.GetProperty("host_pid").GetInt32());
        }
        finally
        {
            DomainTestSupport.Cli("domain", "stop", tmp["d"]);
            if (!host.WaitForExit(TimeSpan.FromSeconds(30)))
            {
                host.Kill(entireProcessTree: true);
            }
        }
    }

    [Theory]
    [InlineData("bash", "complete -o filenames -F _xmig_complete xmig")]
    [InlineData("zsh", "compdef _xmig_complete xmig")]
    public void Completion_PrintsAScriptThatUsesTheSuggestDirective(string shell, string registration)
    {
        var (code, stdout, stderr) = DomainTestSupport.Cli("completion", shell);
        Assert.True(code == 0, stderr);
        Assert.Contains(registration, stdout);
        Assert.Contains("[suggest:", stdout);
    }

    [Theory]
    [InlineData("xmig ext", 8, "extract")]
    [InlineData("xmig domain i", 13, "info")]
    [InlineData("xmig extract x --for", 20, "--format")]
    [InlineData("xmig extract x --format ", 24, "raw")]
    [InlineData("xmig diff a b --j", 17, "--json")]
    public void SuggestDirective_CompletesVerbsOptionsAndValues(string line, int position, string expected)
    {
        var (code, stdout, stderr) = DomainTestSupport.Cli($"[suggest:{position}]", line);
        Assert.True(code == 0, stderr);
        Assert.Contains(expected, stdout.Split('\n', StringSplitOptions.TrimEntries));
    }

    [Trait("Category", XmigProcess.Category)]
    [Fact]
    public async Task BashCompletionScript_CompletesAVerbThroughTheBuiltXmig()
    {
        var bash = new[] { "/bin/bash", "/usr/bin/bash" }.FirstOrDefault(File.Exists);
        if (bash is null)
        {
            Console.WriteLine("SKIPPED bash completion end to end: no bash on this machine");
            return;
        }

        var script = DomainTestSupport.Cli("completion", "bash").Out;
        using var tmp = new TempDirectory();
        File.WriteAllText(tmp["xmig.bash"], script);

        // The script runs "${COMP_WORDS[0]}": a function named xmig stands for the installed command.
        var xmig = XmigProcess.ShellCommand();
        var test = $"xmig() {{ {xmig} \"$@\"; }}\n. '{tmp["xmig.bash"]}'\n"
            + "COMP_LINE='xmig extr'; COMP_POINT=${#COMP_LINE}; COMP_WORDS=(xmig extr); COMP_CWORD=1\n"
            + "_xmig_complete; printf '%s\\n' \"${COMPREPLY[@]}\"\n";
        var start = new ProcessStartInfo(bash) { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add("--norc");
        using var process = Process.Start(start)!;
        process.StandardInput.Write(test);
        process.StandardInput.Close();
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        await process.WaitForExitAsync(timeout.Token);
        var (text, diagnostics) = (await output, await error);
        Assert.True(text.Split('\n').Contains("extract"), text + diagnostics);
    }
}
