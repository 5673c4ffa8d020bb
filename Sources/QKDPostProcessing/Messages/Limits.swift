/// Named limits of the post-processing wire format (Spec/postprocessing.md section 2.2).
/// Every decoder checks a length against its limit before it allocates for it.
public enum PostProcessingLimits {
    /// The only message format version (Spec/postprocessing.md section 2.1).
    public static let version: UInt8 = 1
    /// Most detections one round may report: 2^27 (about 10 s of a 1 GHz source at 1.3%
    /// detection probability); larger batches are split into rounds (section 2.2).
    public static let maxDetections = 1 << 27
    /// Most slots (pulses) one round may span: 2^44 (section 2.2).
    public static let maxSlots: UInt64 = 1 << 44
    /// Most bits in one Cascade parity or reply message: the sifted key limit (section 2.2).
    public static let maxCascadeBits = 1 << 27
    /// Most Cascade steps (round trips) one round may take before the peer is treated as
    /// misbehaving (section 2.2): far above the about 100-450 an honest round needs, and a
    /// bound on the work a peer's contradictory replies can cause.
    public static let maxCascadeSteps = 4_096
    /// The Cascade permutation seed (section 2.4): 32 bytes.
    public static let seedByteCount = 32
    /// Most bits in each privacy-amplification seed a and b (section 2.7): W = n + ℓ - 1 with
    /// ℓ <= n <= maxDetections, so below 2^28.
    public static let maxAmplificationSeedBits = 1 << 28
    /// Poly1305 key and tag sizes (section 2.6).
    public static let verificationKeyByteCount = 16
    public static let verificationTagByteCount = 16
}
