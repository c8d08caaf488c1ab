//! Connections: the TLS every connection uses, and the addresses the app
//! connects to, checked in one place with a real URL
//! parser: HTTPS, or plain HTTP only to this computer (tests, local mirrors);
//! never user-info (`http://127.0.0.1:1@elsewhere/` is a connection to
//! `elsewhere`), the loopback decision made on the parsed host.

use std::net::IpAddr;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("not a valid address ({detail}): {url}")]
    Invalid { detail: String, url: String },
    #[error("the address carries a user name or password, which is refused: {url}")]
    UserInfo { url: String },
    #[error("the address must use https (plain http only to this computer): {url}")]
    Insecure { url: String },
}

/// A checked address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub url: url::Url,
    /// The host is this computer (`localhost`, 127.0.0.0/8, `::1`).
    pub loopback: bool,
}

impl Address {
    pub fn parse(raw: &str) -> Result<Self, AddressError> {
        let url = url::Url::parse(raw).map_err(|e| AddressError::Invalid {
            detail: e.to_string(),
            url: raw.to_string(),
        })?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(AddressError::UserInfo {
                url: raw.to_string(),
            });
        }
        let loopback = match url.host() {
            Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
            Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
            Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
            None => {
                return Err(AddressError::Invalid {
                    detail: "no host".into(),
                    url: raw.to_string(),
                });
            }
        };
        match url.scheme() {
            "https" => Ok(Self { url, loopback }),
            "http" if loopback => Ok(Self { url, loopback }),
            "http" => Err(AddressError::Insecure {
                url: raw.to_string(),
            }),
            other => Err(AddressError::Invalid {
                detail: format!("the scheme '{other}' is not http or https"),
                url: raw.to_string(),
            }),
        }
    }

    /// The host as the user should see it (`example.com`, `[::1]`).
    pub fn host(&self) -> String {
        self.url.host_str().unwrap_or_default().to_string()
    }
}

/// Certificates checked by the operating system's verifier and trust store:
/// a company's TLS-inspecting proxy trusted by this computer is trusted here
/// too, and revocation follows the platform.
pub fn platform_tls() -> ureq::tls::TlsConfig {
    ureq::tls::TlsConfig::builder()
        .root_certs(ureq::tls::RootCerts::PlatformVerifier)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_info_is_refused_even_when_it_looks_like_loopback() {
        for url in [
            "http://127.0.0.1:1@evil.example/m.onnx",
            "https://user@example.com/m.onnx",
            "http://localhost@evil.example/",
        ] {
            assert!(
                matches!(Address::parse(url), Err(AddressError::UserInfo { .. })),
                "{url}"
            );
        }
    }

    #[test]
    fn loopback_is_decided_on_the_parsed_host() {
        assert!(
            Address::parse("http://127.0.0.1:8080/m.onnx")
                .unwrap()
                .loopback
        );
        assert!(Address::parse("http://127.1.2.3/m").unwrap().loopback);
        assert!(Address::parse("http://[::1]:9/m").unwrap().loopback);
        assert!(Address::parse("http://LOCALHOST/m").unwrap().loopback);
        for url in [
            "http://127.0.0.1.example.com/m.onnx",
            "http://example.com/127.0.0.1",
            "http://localhost.evil.example/",
            "http://[::2]/",
        ] {
            assert!(
                matches!(Address::parse(url), Err(AddressError::Insecure { .. })),
                "{url}"
            );
        }
        assert!(!Address::parse("https://example.com/m").unwrap().loopback);
    }

    #[test]
    fn other_schemes_and_garbage_are_invalid() {
        for url in [
            "file:///etc/passwd",
            "ftp://example.com/m",
            "not a url",
            "https://",
        ] {
            assert!(
                matches!(Address::parse(url), Err(AddressError::Invalid { .. })),
                "{url}"
            );
        }
    }
}
