namespace Xmig.Tests;

/// <summary>Locates the committed test data next to the test assembly.</summary>
internal static class TestFiles
{
    public static string Root => Path.Combine(AppContext.BaseDirectory, "TestData");

    public static string Vectors => Path.Combine(Root, "vectors");

    public static string Malformed => Path.Combine(Root, "malformed");

    /// <summary>Every v2 stream written by Xen's converter: <c>*.xen-*.bin</c>.</summary>
    public static IEnumerable<object[]> XenV2Vectors() =>
        Directory.GetFiles(Vectors, "*.xen-*.bin").Order(StringComparer.Ordinal).Select(p => new object[] { Path.GetFileName(p) });
}
