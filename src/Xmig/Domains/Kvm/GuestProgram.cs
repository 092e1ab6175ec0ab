using System.Globalization;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Xmig.Domains.Kvm;

/// <summary>The programs a KVM test guest can run (the mailbox's <c>program</c> field).</summary>
internal enum GuestProgramKind : ulong
{
    Counter = 1,
    Dirty = 2,
}

/// <summary>
/// A guest program and its parameters, parsed from <c>counter</c> or <c>dirty:WSS:RATE</c> (working-set size, and
/// rate in MiB/s; rate 0 dirties as fast as the vCPU can).
/// </summary>
internal sealed record GuestProgram(GuestProgramKind Kind, ulong WorkingSetBytes, ulong RateMiBps)
{
    public static bool TryParse(string? text, out GuestProgram program, out string problem)
    {
        program = new GuestProgram(GuestProgramKind.Counter, 0, 0);
        problem = "";
        if (text == "counter")
        {
            return true;
        }

        var parts = (text ?? "").Split(':');
        if (parts.Length == 3 && parts[0] == "dirty" && ByteSize.TryParse(parts[1], out var wss)
            && ulong.TryParse(parts[2], NumberStyles.None, CultureInfo.InvariantCulture, out var rate))
        {
            if (wss < GuestPage.Size || wss % GuestPage.Size != 0)
            {
                problem = $"program \"{text}\": the working set must be a positive multiple of 4 KiB";
                return false;
            }

            program = new GuestProgram(GuestProgramKind.Dirty, wss, rate);
            return true;
        }

        problem = $"program \"{text}\" is not counter or dirty:WSS:RATE (e.g. dirty:64MiB:256)";
        return false;
    }

    public override string ToString() => Kind == GuestProgramKind.Counter
        ? "counter"
        : string.Create(CultureInfo.InvariantCulture, $"dirty:{ByteSize.Format(WorkingSetBytes)}:{RateMiBps}");

    /// <summary>Machine code of the boot vCPU's program, to be placed at <see cref="GuestLayout.BootCode"/>.</summary>
    public byte[] AssembleBoot() => Kind == GuestProgramKind.Counter ? AssembleCounter() : AssembleDirty();

    /// <summary>
    /// The counter, after QEMU's migration test guest: forever, add one to the first octet of every page of the test
    /// area in ascending order; after each sweep, add one to the mailbox's sweep count and OUT it (low 32 bits) on the
    /// report port. Every step is checkable from memory alone (<see cref="CounterImage"/>).
    /// </summary>
    public static byte[] AssembleCounter()
    {
        var a = new Assembler(64);
        var outer = a.CreateLabel();
        var inner = a.CreateLabel();
        a.mov(rsp, GuestLayout.StackTop);
        a.mov(rdi, GuestLayout.Mailbox);
        a.mov(rbx, __qword_ptr[rdi + GuestLayout.MailboxField.AreaStart]);
        a.mov(rcx, __qword_ptr[rdi + GuestLayout.MailboxField.AreaEnd]);
        a.Label(ref outer);
        a.mov(rax, rbx);
        a.Label(ref inner);
        a.inc(__byte_ptr[rax]);
        a.add(rax, GuestPage.Size);
        a.cmp(rax, rcx);
        a.jb(inner);
        a.inc(__qword_ptr[rdi + GuestLayout.MailboxField.Sweeps]);
        a.mov(eax, __dword_ptr[rdi + GuestLayout.MailboxField.Sweeps]);
        a.@out((byte)GuestLayout.ReportPort, eax);
        a.jmp(outer);
        return Assemble(a, GuestLayout.BootCode);
    }

    /// <summary>
    /// The dirtier: forever, add one to the first u64 of every page of the working set in turn, counting pages in the
    /// mailbox; OUT on the pace port after every 16 pages (the backend holds the vCPU there to keep the rate) and on
    /// the report port after each sweep. It writes the working set and the mailbox page, nothing else.
    /// </summary>
    public static byte[] AssembleDirty()
    {
        var a = new Assembler(64);
        var outer = a.CreateLabel();
        var inner = a.CreateLabel();
        var noPace = a.CreateLabel();
        a.mov(rsp, GuestLayout.StackTop);
        a.mov(rdi, GuestLayout.Mailbox);
        a.mov(rbx, __qword_ptr[rdi + GuestLayout.MailboxField.AreaStart]);
        a.mov(rcx, __qword_ptr[rdi + GuestLayout.MailboxField.AreaEnd]);
        a.Label(ref outer);
        a.mov(rsi, rbx);
        a.Label(ref inner);
        a.inc(__qword_ptr[rsi]);
        a.inc(__qword_ptr[rdi + GuestLayout.MailboxField.PagesWritten]);
        a.add(rsi, GuestPage.Size);
        a.mov(rax, rsi);
        a.shr(rax, 12);
        a.and(eax, GuestLayout.PaceBatchPages - 1);
        a.jnz(noPace);
        a.mov(eax, __dword_ptr[rdi + GuestLayout.MailboxField.PagesWritten]);
        a.@out((byte)GuestLayout.PacePort, eax);
        a.Label(ref noPace);
        a.cmp(rsi, rcx);
        a.jb(inner);
        a.inc(__qword_ptr[rdi + GuestLayout.MailboxField.Sweeps]);
        a.mov(eax, __dword_ptr[rdi + GuestLayout.MailboxField.Sweeps]);
        a.@out((byte)GuestLayout.ReportPort, eax);
        a.jmp(outer);
        return Assemble(a, GuestLayout.BootCode);
    }

    /// <summary>What the other vCPUs run: interrupts off, HLT (the backend leaves a halted vCPU halted).</summary>
    public static byte[] AssembleAp()
    {
        var a = new Assembler(64);
        var again = a.CreateLabel();
        a.cli();
        a.Label(ref again);
        a.hlt();
        a.jmp(again);
        return Assemble(a, GuestLayout.ApCode);
    }

    private static byte[] Assemble(Assembler a, ulong rip)
    {
        using var stream = new MemoryStream();
        a.Assemble(new StreamCodeWriter(stream), rip);
        return stream.ToArray();
    }
}
