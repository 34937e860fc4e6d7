//! The download options `update` and `check` share.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use deltaapply::fetch::Options;

/// How downloads behave.
#[derive(clap::Args)]
pub struct NetworkArgs {
    /// Attempts per mirror after the first, for failures that may pass.
    #[arg(long, value_name = "N", default_value_t = Options::default().retries)]
    retries: u32,
    /// Seconds to wait for a connection.
    #[arg(long, value_name = "SECONDS", default_value_t = Options::default().connect_timeout.as_secs())]
    connect_timeout: u64,
    /// Seconds without data after which a transfer is given up (and retried).
    #[arg(long, value_name = "SECONDS", default_value_t = Options::default().read_timeout.as_secs())]
    read_timeout: u64,
    /// Lowest average download speed, bytes per second, over each --min-speed-time
    /// (0: no minimum); a slower transfer is cut off and retried.
    #[arg(long, value_name = "BYTES", default_value_t = Options::default().min_speed)]
    min_speed: u64,
    /// Seconds over which --min-speed is measured.
    #[arg(long, value_name = "SECONDS", default_value_t = Options::default().min_speed_time.as_secs())]
    min_speed_time: u64,
    /// Also trust this CA certificate (PEM or DER), for a server with a private CA.
    #[arg(long, value_name = "FILE")]
    ca_cert: Vec<PathBuf>,
    /// Refuse plain http:// (and redirects to it).
    #[arg(long)]
    https_only: bool,
}

impl NetworkArgs {
    /// The fetch options these arguments describe.
    pub fn options(&self) -> anyhow::Result<Options> {
        let mut roots = Vec::new();
        for path in &self.ca_cert {
            let bytes = std::fs::read(path)
                .with_context(|| format!("cannot read CA certificate {}", path.display()))?;
            if bytes.starts_with(b"-----BEGIN") {
                use rustls::pki_types::CertificateDer;
                use rustls::pki_types::pem::PemObject;
                for cert in CertificateDer::pem_slice_iter(&bytes) {
                    let cert = cert.map_err(|e| {
                        anyhow::anyhow!("{}: not a PEM certificate: {e}", path.display())
                    })?;
                    roots.push(cert.to_vec());
                }
            } else {
                roots.push(bytes);
            }
        }
        Ok(Options {
            connect_timeout: Duration::from_secs(self.connect_timeout),
            read_timeout: Duration::from_secs(self.read_timeout),
            min_speed: self.min_speed,
            min_speed_time: Duration::from_secs(self.min_speed_time.max(1)),
            retries: self.retries,
            allow_http: !self.https_only,
            extra_root_certificates: roots,
            ..Options::default()
        })
    }
}
