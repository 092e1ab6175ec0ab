using System.CommandLine;
using System.Runtime.InteropServices;
using System.Text.Json;
using Xmig.Domains;
using Xmig.Hosting;

namespace Xmig.Cli.Commands;

/// <summary>
/// <c>xmig domain run DIR [--workload W]</c> hosts a domain (the simulated hypervisor) with its control socket;
/// <c>xmig domain status|pause|unpause|stop DIR</c> talk to it.
/// </summary>
internal static class DomainRunCommand
{
    /// <summary>Adds <c>run</c>, <c>status</c>, <c>pause</c>, <c>unpause</c> and <c>stop</c> to <c>xmig domain</c>.</summary>
    public static void AddTo(Command domain, CliContext ctx)
    {
        domain.Subcommands.Add(CreateRun(ctx));
        domain.Subcommands.Add(CreateStatus(ctx));
        domain.Subcommands.Add(CreateControl(ctx, "pause", "Pause a hosted domain."));
        domain.Subcommands.Add(CreateControl(ctx, "unpause", "Unpause a hosted domain."));
        domain.Subcommands.Add(CreateControl(ctx, "stop", "Stop a hosted domain: persist it and end its host."));
    }

    /// <summary>Waits until the host ends (stop, SIGTERM, Ctrl-C, or migrated away), then cleans up after it.</summary>
    public static ExitCode RunUntilExit(CliContext ctx, DomainHost host)
    {
        void OnSignal(PosixSignalContext signal)
        {
            signal.Cancel = true;
            if (host.State == HostState.Migrating)
            {
                ctx.Error.WriteLine($"domain host: {signal.Signal} while migrating: the migration is cancelled, and the domain stopped once it runs here again");
            }

            if (!host.Stop(cancelMigration: true))
            {
                ctx.Error.WriteLine("domain host: past the point of no return; the signal takes effect when the migration ends");
            }
        }

        using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);
        using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);
        host.WaitForExit();
        var status = host.Status();
        if (host.State == HostState.MigratedAway)
        {
            // xl destroys the old domain once the target runs it.
            ctx.Error.WriteLine($"domain host: migrated away; destroying {status.Directory}");
            try
            {
                Directory.Delete(status.Directory, recursive: true);
            }
            catch (IOException e)
            {
                ctx.Error.WriteLine($"xmig: error: could not remove {status.Directory}: {e.Message}");
            }
        }
        else
        {
            ctx.Error.WriteLine($"domain host: stopped; {status.Directory} persisted");
        }

        return ExitCode.Ok;
    }

    private static Command CreateRun(CliContext ctx)
    {
        var dir = new Argument<string>("DIR") { Description = "Domain directory." };
        var workload = new Option<string>("--workload") { Description = "Guest workload: idle, uniform:RATE (MiB/s), hotset:SIZE:RATE.", DefaultValueFactory = _ => "idle" };
        var seed = new Option<ulong>("--seed") { Description = "Workload seed.", DefaultValueFactory = _ => 1 };
        var verbose = new Option<bool>("--verbose", "-v") { Description = "Show stack traces on errors." };
        var command = new Command("run", "Host a domain: it runs (its workload writing memory) until stopped or migrated; control socket DIR/control.sock (0600).")
        {
            dir, workload, seed, verbose,
        };
        command.SetAction(parse => EngineCommand.Run(ctx, parse.GetValue(verbose), () =>
        {
            if (!WorkloadSpec.TryParse(parse.GetValue(workload), out var spec, out var problem))
            {
                return EngineCommand.Usage(ctx, problem);
            }

            var domain = SimulatedDomain.Open(parse.GetValue(dir)!, writable: true);
            using var host = new DomainHost(domain, spec, parse.GetValue(seed), line => ctx.Error.WriteLine(line));
            try
            {
                host.Start();
                return RunUntilExit(ctx, host);
            }
            finally
            {
                domain.Dispose();
            }
        }));
        return command;
    }

    private static Command CreateStatus(CliContext ctx)
    {
        var dir = new Argument<string>("DIR") { Description = "Domain directory." };
        var json = new Option<bool>("--json") { Description = "Print one JSON document (state, uptime_seconds, pages_written, ...)." };
        var command = new Command("status", "Show a domain's state: running, paused, migrating, migrated-away (hosted), or not running.")
        {
            dir, json,
        };
        command.SetAction(parse => EngineCommand.Run(ctx, false, () =>
        {
            var path = parse.GetValue(dir)!;
            HostStatus? status = null;
            if (DomainControl.Request(path, "status") is { Ok: true } answer)
            {
                status = JsonSerializer.Deserialize(answer.Text, HostJson.Default.HostStatus);
            }

            if (status is null)
            {
                if (!Directory.Exists(path))
                {
                    throw new DirectoryNotFoundException($"{path}: no such directory");
                }

                status = new HostStatus { State = "not running", Directory = Path.GetFullPath(path) };
            }

            ctx.Out.WriteLine(parse.GetValue(json)
                ? JsonSerializer.Serialize(status, HostJson.Default.HostStatus)
                : $"{status.State}{(status.Pid > 0 ? $" (pid {status.Pid}, up {status.UptimeSeconds:0.#} s, {status.PagesWritten} pages written, {status.Workload})" : "")}");
            return ExitCode.Ok;
        }));
        return command;
    }

    private static Command CreateControl(CliContext ctx, string verb, string description)
    {
        var dir = new Argument<string>("DIR") { Description = "Domain directory (hosted by 'xmig domain run')." };
        var command = new Command(verb, description) { dir };
        command.SetAction(parse => EngineCommand.Run(ctx, false, () =>
        {
            var path = parse.GetValue(dir)!;
            switch (DomainControl.Request(path, verb))
            {
                case null:
                    return EngineCommand.Usage(ctx, $"{path}: not hosted (no 'xmig domain run' answers on its control socket)");
                case { Ok: false } failed:
                    return EngineCommand.Usage(ctx, failed.Text);
                case { } done:
                    ctx.Out.WriteLine(done.Text);
                    return ExitCode.Ok;
            }
        }));
        return command;
    }
}
