//! Service colours: the same service has the same colour on every page and in every trace.

/// Hues far enough apart to tell services apart at a glance.
const HUES: [u16; 12] = [210, 28, 140, 350, 265, 175, 48, 310, 95, 190, 5, 235];

/// The colour of a service, as a CSS colour that reads on light and dark backgrounds.
pub fn service(name: &str) -> String {
    // FNV-1a: stable across builds and targets, unlike std's hasher.
    let mut hash: u32 = 0x811c_9dc5;
    for b in name.bytes() {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    let hue = HUES[(hash % HUES.len() as u32) as usize];
    let lightness = 42 + (hash >> 8) % 3 * 6;
    format!("hsl({hue} 62% {lightness}%)")
}

#[cfg(test)]
mod tests {
    #[test]
    fn colours_are_stable_and_spread() {
        assert_eq!(super::service("checkout"), super::service("checkout"));
        let names = [
            "frontend",
            "checkout",
            "payment",
            "inventory",
            "db",
            "cache",
        ];
        let distinct: std::collections::HashSet<String> =
            names.iter().map(|n| super::service(n)).collect();
        assert!(distinct.len() >= 5, "{distinct:?}");
    }
}
