//! Which coding a client gets: `Accept-Encoding` with its q-values (RFC 9110 §12.5.3) against
//! the plugin's list, ties broken by the list's order.

/// A coding tidegate can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Gzip,
    Brotli,
    Zstd,
}

impl Coding {
    pub fn parse(s: &str) -> Option<Coding> {
        match s.trim().to_ascii_lowercase().as_str() {
            "gzip" | "x-gzip" => Some(Coding::Gzip),
            "br" => Some(Coding::Brotli),
            "zstd" => Some(Coding::Zstd),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Coding::Gzip => "gzip",
            Coding::Brotli => "br",
            Coding::Zstd => "zstd",
        }
    }

    pub fn algorithm(self) -> pingora::protocols::http::compression::Algorithm {
        use pingora::protocols::http::compression::Algorithm;
        match self {
            Coding::Gzip => Algorithm::Gzip,
            Coding::Brotli => Algorithm::Brotli,
            Coding::Zstd => Algorithm::Zstd,
        }
    }
}

/// A q-value in thousandths; a malformed one counts as 0 (not acceptable).
fn q_of(params: &str) -> u16 {
    for p in params.split(';') {
        let Some((k, v)) = p.split_once('=') else {
            continue;
        };
        if !k.trim().eq_ignore_ascii_case("q") {
            continue;
        }
        let v = v.trim();
        return match v.parse::<f32>() {
            Ok(q) if (0.0..=1.0).contains(&q) => (q * 1000.0).round() as u16,
            _ => 0,
        };
    }
    1000
}

/// The coding to use for `accept` (the header's value), given `prefer` (the plugin's list,
/// most wanted first). `None`: send the body as it is.
pub fn choose(accept: &str, prefer: &[Coding]) -> Option<Coding> {
    let mut star: Option<u16> = None;
    let mut named: Vec<(Coding, u16)> = Vec::new();
    for item in accept.split(',') {
        let (token, params) = item.split_once(';').unwrap_or((item, ""));
        let token = token.trim();
        let q = q_of(params);
        if token == "*" {
            star = Some(q);
        } else if let Some(c) = Coding::parse(token) {
            named.push((c, q));
        }
    }
    let q_for = |c: Coding| {
        named
            .iter()
            .find(|(n, _)| *n == c)
            .map(|(_, q)| *q)
            .or(star)
            .unwrap_or(0)
    };
    let mut best: Option<(Coding, u16)> = None;
    for c in prefer {
        let q = q_for(*c);
        if q > 0 && best.is_none_or(|(_, bq)| q > bq) {
            best = Some((*c, q));
        }
    }
    best.map(|(c, _)| c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Coding::*;

    #[test]
    fn q_values_then_preference() {
        let all = [Zstd, Brotli, Gzip];
        assert_eq!(choose("gzip", &all), Some(Gzip));
        assert_eq!(choose("gzip, deflate, br, zstd", &all), Some(Zstd));
        assert_eq!(choose("gzip;q=1.0, br;q=0.8", &all), Some(Gzip));
        assert_eq!(
            choose("br;q=0.5, gzip;q=0.5", &all),
            Some(Brotli),
            "a tie: the list's order"
        );
        assert_eq!(choose("gzip;q=0", &all), None);
        assert_eq!(choose("identity", &all), None);
        assert_eq!(choose("", &all), None);
        assert_eq!(choose("*", &all), Some(Zstd));
        assert_eq!(choose("*;q=0.1, zstd;q=0", &all), Some(Brotli));
        assert_eq!(choose("GZIP ; Q=0.9", &all), Some(Gzip));
        assert_eq!(
            choose("gzip;q=2", &all),
            None,
            "a malformed q is not acceptable"
        );
        assert_eq!(choose("br", &[Gzip]), None, "only listed codings");
    }
}
