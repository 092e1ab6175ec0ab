using System.Buffers.Binary;

namespace Xmig.Domains.Kvm;

/// <summary>What <see cref="CounterImage.Check"/> found: bad pages (0 = consistent), completed sweeps, and steps.</summary>
/// <param name="BadPages">Pages that break the pattern (and 1 more when the mailbox disagrees with the pages).</param>
/// <param name="Sweeps">Sweeps completed, from the mailbox.</param>
/// <param name="Steps">Increments done: sweeps × pages plus the pages of the sweep in progress.</param>
/// <param name="Pages">Pages in the test area.</param>
internal readonly record struct CounterCheck(long BadPages, ulong Sweeps, ulong Steps, ulong Pages)
{
    public bool Consistent => BadPages == 0;
}

/// <summary>
/// The consistency checker of the counter guest, after QEMU's <c>check_guests_ram</c>: the counter adds one to the
/// first octet of every test page in ascending order, so in a consistent image each page's octet equals the previous
/// page's, except at one edge where it is one less (the pages before the edge are one sweep ahead). The mailbox's
/// sweep count must agree with the first page: its octet is the sweep count (mod 256), or one more mid-sweep.
/// </summary>
internal static class CounterImage
{
    /// <summary>Checks the counter guest's image in <paramref name="domain"/> (paused, or a saved image).</summary>
    public static CounterCheck Check(IDomain domain)
    {
        ArgumentNullException.ThrowIfNull(domain);
        var mailboxPfn = GuestLayout.Mailbox / GuestPage.Size;
        if (mailboxPfn >= domain.P2mSize)
        {
            throw new InvalidDataException("memory too small to hold the counter guest's mailbox");
        }

        var mailbox = domain.GetPage(mailboxPfn);
        if (BinaryPrimitives.ReadUInt64LittleEndian(mailbox[GuestLayout.MailboxField.Magic..]) != GuestLayout.MailboxMagic)
        {
            throw new InvalidDataException("no test-guest mailbox at 0x8000");
        }

        var start = BinaryPrimitives.ReadUInt64LittleEndian(mailbox[GuestLayout.MailboxField.AreaStart..]) / GuestPage.Size;
        var end = BinaryPrimitives.ReadUInt64LittleEndian(mailbox[GuestLayout.MailboxField.AreaEnd..]) / GuestPage.Size;
        var sweeps = BinaryPrimitives.ReadUInt64LittleEndian(mailbox[GuestLayout.MailboxField.Sweeps..]);
        if (start >= end || end > domain.P2mSize)
        {
            throw new InvalidDataException($"mailbox test area 0x{start:X} … 0x{end:X} is not inside the {domain.P2mSize} frames");
        }

        long bad = 0;
        var hitEdge = false;
        ulong edge = 0;
        var first = domain.GetPage(start)[0];
        var last = first;
        for (var pfn = start + 1; pfn < end; pfn++)
        {
            var b = domain.GetPage(pfn)[0];
            if (b != last)
            {
                if ((byte)(b + 1) == last && !hitEdge)
                {
                    hitEdge = true;
                    edge = pfn - start;
                }
                else
                {
                    bad++;
                }
            }

            last = b;
        }

        var pages = end - start;
        ulong steps;
        if (hitEdge)
        {
            // mid-sweep: pages before the edge are one ahead of the sweep count
            steps = (sweeps * pages) + edge;
            bad += first == (byte)(sweeps + 1) ? 0 : 1;
        }
        else if (first == (byte)sweeps)
        {
            steps = sweeps * pages;
        }
        else if (first == (byte)(sweeps + 1))
        {
            steps = (sweeps + 1) * pages; // the last page done, the sweep count not yet written
        }
        else
        {
            steps = sweeps * pages;
            bad++;
        }

        return new CounterCheck(bad, sweeps, steps, pages);
    }
}
