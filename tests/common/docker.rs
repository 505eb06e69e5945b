//! The real Docker engine of this machine: tidegate's own image (built FROM scratch by
//! scripts/docker-build.sh from the binary under test, since no registry can be reached) and
//! containers of it on a private bridge network that the test makes and removes.

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

pub const IMAGE: &str = "tidegate-test:latest";
/// [`IMAGE`] with a HEALTHCHECK: `tidegate check -c /cfg/health.toml` every second, so a
/// test makes a container unhealthy by writing a bad /cfg/health.toml.
pub const HEALTH_IMAGE: &str = "tidegate-test:health";

/// Run `docker ARGS`, panicking with its output when it fails; its stdout.
pub fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("docker (is the engine installed?)");
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Build both images once per test process.
pub fn images() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let root = env!("CARGO_MANIFEST_DIR");
        let out = Command::new(format!("{root}/scripts/docker-build.sh"))
            .args(["--bin", super::bin(), "--tag", IMAGE])
            .output()
            .expect("scripts/docker-build.sh");
        assert!(
            out.status.success(),
            "docker-build.sh: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let dockerfile = format!(
            "FROM {IMAGE}\nHEALTHCHECK --interval=1s --timeout=5s --retries=1 \
             CMD [\"/bin/tidegate\", \"check\", \"-c\", \"/cfg/health.toml\"]\n"
        );
        let mut child = Command::new("docker")
            .args(["build", "--quiet", "-t", HEALTH_IMAGE, "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("docker build");
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(dockerfile.as_bytes())
            .expect("dockerfile");
        assert!(
            child.wait().is_ok_and(|s| s.success()),
            "docker build health image"
        );
    });
}

/// A bridge network of the test's own; its containers and itself are removed when dropped.
pub struct Net {
    pub name: String,
    containers: std::sync::Mutex<Vec<String>>,
}

impl Net {
    pub fn create(tag: &str) -> Net {
        let name = format!("tidegate-{tag}-{}", std::process::id());
        let _ = Command::new("docker")
            .args(["network", "rm", &name])
            .output();
        docker(&["network", "create", &name]);
        Net {
            name,
            containers: Default::default(),
        }
    }

    /// Start a container of `image` on this network named `NET-name`, its /cfg the folder
    /// `cfg`, with these labels and arguments after the image.
    pub fn run(
        &self,
        name: &str,
        image: &str,
        cfg: &Path,
        labels: &[&str],
        args: &[&str],
    ) -> String {
        let full = format!("{}-{name}", self.name);
        let mount = format!("{}:/cfg", cfg.display());
        let mut argv = vec![
            "run",
            "-d",
            "--name",
            &full,
            "--network",
            &self.name,
            "-v",
            &mount,
        ];
        for l in labels {
            argv.push("--label");
            argv.push(l);
        }
        argv.push(image);
        argv.extend_from_slice(args);
        docker(&argv);
        self.containers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(full.clone());
        full
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        let names = self
            .containers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for c in names {
            let _ = Command::new("docker").args(["rm", "-f", &c]).output();
        }
        let _ = Command::new("docker")
            .args(["network", "rm", &self.name])
            .output();
    }
}

/// A folder a container mounts as /cfg: `tidegate.toml` answering `body` on port 8080 (and
/// the same as `health.toml`, which the health image checks). Readable by the image's user.
pub fn responder_dir(parent: &Path, body: &str) -> std::path::PathBuf {
    let dir = parent.join(body);
    std::fs::create_dir_all(&dir).expect("cfg dir");
    let cfg = format!(
        "[basic]\nthreads = 1\ngrace_period = \"1s\"\ngraceful_shutdown_timeout = \"1s\"\n\n\
         [servers.main]\naddr = \"0.0.0.0:8080\"\nlocations = [\"all\"]\n\n\
         [locations.all]\nplugins = [\"answer\"]\n\n\
         [plugins.answer]\ncategory = \"mock\"\nbody = \"{body}\"\n"
    );
    std::fs::write(dir.join("tidegate.toml"), &cfg).expect("config");
    std::fs::write(dir.join("health.toml"), &cfg).expect("health config");
    use std::os::unix::fs::PermissionsExt;
    for p in [parent, dir.as_path()] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    for f in ["tidegate.toml", "health.toml"] {
        std::fs::set_permissions(dir.join(f), std::fs::Permissions::from_mode(0o644))
            .expect("chmod");
    }
    dir
}
