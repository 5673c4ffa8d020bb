import Metrics

/// The node's swift-metrics instruments. Labels are stable; dimensions carry the role.
struct NodeMetrics {
    let framesSent: Counter
    let bytesSent: Counter
    let bytesReceived: Counter
    let authenticationFailures: Counter
    let padBitsUsed: Counter
    let keyBitsProduced: Counter
    let keyBitsDelivered: Counter
    let roundsFinished: Counter
    let roundsAborted: Counter
    let reconnects: Counter
    let qber: Gauge
    let poolOutboundBytes: Gauge
    let poolInboundBytes: Gauge

    init(role: String, factory: (any MetricsFactory)?) {
        let dims = [("role", role)]
        func counter(_ label: String) -> Counter {
            if let factory { return Counter(label: label, dimensions: dims, factory: factory) }
            return Counter(label: label, dimensions: dims)
        }
        func gauge(_ label: String) -> Gauge {
            if let factory { return Gauge(label: label, dimensions: dims, factory: factory) }
            return Gauge(label: label, dimensions: dims)
        }
        framesSent = counter("qkd_node_frames_sent")
        bytesSent = counter("qkd_node_bytes_sent")
        bytesReceived = counter("qkd_node_bytes_received")
        authenticationFailures = counter("qkd_node_authentication_failures")
        padBitsUsed = counter("qkd_node_pad_bits_used")
        keyBitsProduced = counter("qkd_node_key_bits_produced")
        keyBitsDelivered = counter("qkd_node_key_bits_delivered")
        roundsFinished = counter("qkd_node_rounds_finished")
        roundsAborted = counter("qkd_node_rounds_aborted")
        reconnects = counter("qkd_node_reconnects")
        qber = gauge("qkd_node_qber")
        poolOutboundBytes = gauge("qkd_node_pool_outbound_bytes")
        poolInboundBytes = gauge("qkd_node_pool_inbound_bytes")
    }
}
