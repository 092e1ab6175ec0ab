using Xmig.Formats.Libxc;
using Xmig.Formats.Xl;
using LibxlStreamHeader = Xmig.Formats.Libxl.StreamHeader;

namespace Xmig.Verify;

/// <summary>
/// Receives what <see cref="StreamVerifier"/> reads, in stream order (<c>Xmig.Inspect</c> renders it).
/// Arguments are only valid during the call.
/// </summary>
public interface IStreamObserver
{
    /// <summary>When true, the verifier fills <see cref="RecordInfo.Detail"/> (costs allocations).</summary>
    bool WantsDetail { get; }

    void OnXlHeader(XlHeader header, ReadOnlySpan<byte> optionalData, long offset);

    void OnLibxlHeader(LibxlStreamHeader header, long offset);

    void OnImageHeader(ImageHeader header, long offset);

    void OnDomainHeader(DomainHeader header, long offset);

    void OnRecord(RecordInfo record);

    /// <summary>Octets after the outermost END; <paramref name="qemuLength"/> is set for a QEMU record.</summary>
    void OnTrailingData(long offset, long length, uint? qemuLength);

    void OnWarning(VerifyWarning warning);
}
