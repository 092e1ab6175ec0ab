namespace Xmig.Tests.Transport;

/// <summary>The channel's texts as arrays, for fake peers.</summary>
internal static class XlMigrationMessagesText
{
    public static byte[] Banner => Xmig.Transport.XlMigrationMessages.Banner.ToArray();
}
