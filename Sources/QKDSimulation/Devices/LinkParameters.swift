#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The physical parameters of a simulated BB84 link (prepare-and-measure, single-photon source).
public struct LinkParameters: Sendable, Equatable {
    /// Pulses (slots) per round.
    public var pulsesPerRound: Int
    /// Probability that Alice prepares, and Bob measures, in the Z basis. 0.5 is the balanced
    /// protocol; larger values give efficient BB84 (Lo, Chau and Ardehali 2005).
    public var probabilityZ: Double
    /// Channel loss in dB (fibre: 0.2 dB/km, see ``fibreLoss(kilometres:)``).
    public var channelLossDB: Double
    /// Bob's detector efficiency, 0...1.
    public var detectorEfficiency: Double
    /// Probability of a dark count per slot.
    public var darkCountProbability: Double
    /// Probability that a photon measured in the basis it was prepared in gives the wrong bit
    /// (optical misalignment). This sets the QBER of the photon detections.
    public var misalignment: Double
    /// Fraction of pulses an intercept-resend eavesdropper measures in a random basis and
    /// resends. 1.0 gives a QBER of about 25%.
    public var interceptFraction: Double

    /// Creates parameters.
    /// - Parameters:
    ///   - pulsesPerRound: slots per round.
    ///   - probabilityZ: basis bias.
    ///   - channelLossDB: loss in dB.
    ///   - detectorEfficiency: 0...1.
    ///   - darkCountProbability: per slot.
    ///   - misalignment: error probability in the matching basis.
    ///   - interceptFraction: fraction of intercepted pulses.
    public init(pulsesPerRound: Int, probabilityZ: Double = 0.5, channelLossDB: Double = 0,
                detectorEfficiency: Double = 1, darkCountProbability: Double = 0,
                misalignment: Double = 0, interceptFraction: Double = 0) {
        precondition(pulsesPerRound >= 0)
        precondition((0...1).contains(probabilityZ) && (0...1).contains(detectorEfficiency)
            && (0...1).contains(darkCountProbability) && (0...1).contains(misalignment)
            && (0...1).contains(interceptFraction) && channelLossDB >= 0, "probabilities in 0...1, loss >= 0")
        self.pulsesPerRound = pulsesPerRound
        self.probabilityZ = probabilityZ
        self.channelLossDB = channelLossDB
        self.detectorEfficiency = detectorEfficiency
        self.darkCountProbability = darkCountProbability
        self.misalignment = misalignment
        self.interceptFraction = interceptFraction
    }

    /// Loss of standard telecom fibre at 1550 nm: 0.2 dB/km.
    /// - Parameter kilometres: fibre length.
    /// - Returns: loss in dB.
    public static func fibreLoss(kilometres: Double) -> Double { 0.2 * kilometres }

    /// Channel transmittance 10^(-loss/10).
    public var channelTransmittance: Double { pow(10, -channelLossDB / 10) }
}

