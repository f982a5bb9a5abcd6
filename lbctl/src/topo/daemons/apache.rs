//! Apache + PHP backends (`web = "apache"` on a server node): one Apache instance per
//! server namespace, the way the lab text runs its web servers, instead of `lbctl serve`.
//!
//! Each instance is self-contained under `run_dir(lab)/apache/<node>/`: a generated
//! `apache2.conf`, the pid file, mutexes and runtime files, the error and access logs, and
//! a `docroot/` with `index.php` (the lab text's page: server name and the client address
//! PHP sees) and `health.php` (served as `/health`, 200 "ok"). Nothing under /etc/apache2
//! is used except the `LoadModule` lines of `mods-available/*.load`; no apache2ctl, no
//! systemd, no `APACHE_*` environment, no /var/run/apache2.
//!
//! Apache runs with `-DFOREGROUND`, so the process its supervisor starts stays Apache's
//! parent: its PID is the recorded one and `lbctl down`'s SIGTERM stops it, and the
//! parent stops its prefork children before it exits.

use super::state;
use anyhow::{bail, Context, Result};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

pub const APACHE_BIN: &str = "/usr/sbin/apache2";
/// Apache's log rotator (apache2-utils).
pub const ROTATELOGS: &str = "/usr/bin/rotatelogs";
pub const MODS_AVAILABLE: &str = "/etc/apache2/mods-available";
/// Name of the daemon in the lab's PID and log records (`<node>.apache.pid`).
pub const DAEMON: &str = "apache";
/// The user prefork children run as (Apache refuses to serve as root).
const RUN_USER: &str = "www-data";

/// Modules the instance loads (besides the PHP module, found by version). log_config and
/// unixd are compiled into Debian's apache2.
const MODULES: &[&str] = &[
    "mpm_prefork",
    "authz_core",
    "authz_host",
    "dir",
    "mime",
    "alias",
];

/// The instance directory of a node.
pub fn instance_dir(lab: &str, node: &str) -> PathBuf {
    state::run_dir(lab).join("apache").join(node)
}

/// Writes the instance's config + docroot and starts `apache2 -f <conf> -DFOREGROUND`
/// inside the node's namespace via [`super::spawn_daemon`] (the PID
/// is recorded so `lbctl down` stops it; Apache started with -DFOREGROUND stays the
/// recorded PID). Listens on `listen` and, when that is a specific non-loopback address,
/// also on 127.0.0.1 at the same port, so probes from inside the node (`lbctl up`'s wait
/// for the servers) work as with `lbctl serve`.
pub fn start(lab: &str, node: &str, listen: SocketAddr, lbctl: &Path) -> Result<u32> {
    if !Path::new(APACHE_BIN).exists() {
        bail!(
            "{node}: web = \"apache\" needs {APACHE_BIN}: run scripts/bootstrap.sh (installs apache2 and libapache2-mod-php)"
        );
    }
    let dir = instance_dir(lab, node);
    let conf = write_instance(&dir, node, listen)?;
    // A config error is reported here, with Apache's own message, rather than as a server
    // that never answers.
    let out = Command::new(APACHE_BIN)
        .arg("-t")
        .arg("-f")
        .arg(&conf)
        .output()
        .with_context(|| format!("running {APACHE_BIN} -t"))?;
    if !out.status.success() {
        bail!(
            "{node}: Apache refuses {}: {}",
            conf.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let args = vec![
        APACHE_BIN.to_string(),
        "-f".to_string(),
        conf.display().to_string(),
        "-DFOREGROUND".into(),
    ];
    super::spawn_daemon(lab, node, DAEMON, lbctl, &args)
}

/// Creates the instance directory, its docroot and config; returns the config path.
pub fn write_instance(dir: &Path, node: &str, listen: SocketAddr) -> Result<PathBuf> {
    let docroot = dir.join("docroot");
    std::fs::create_dir_all(&docroot).with_context(|| format!("creating {}", docroot.display()))?;
    std::fs::write(docroot.join("index.php"), index_php(node))?;
    std::fs::write(docroot.join("health.php"), HEALTH_PHP)?;
    let conf = dir.join("apache2.conf");
    std::fs::write(&conf, config(dir, node, listen, &load_modules()?))
        .with_context(|| format!("writing {}", conf.display()))?;
    Ok(conf)
}

/// The lab text's page, with the client address as PHP sees it.
pub fn index_php(node: &str) -> String {
    let n = lb_chart::escape(node);
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{n}</title></head>\n<body>\n\
         <h1>Esto es el servidor {n}</h1>\n\
         <p>El cliente que ha pedido esta pagina tiene direccion: <?php echo $_SERVER['REMOTE_ADDR']; ?></p>\n\
         </body></html>\n"
    )
}

const HEALTH_PHP: &str =
    "<?php\nheader('Content-Type: text/plain');\nheader('Cache-Control: no-store');\necho \"ok\\n\";\n";

/// `LoadModule` lines for [`MODULES`] and the newest PHP module, read from Debian's
/// mods-available.
fn load_modules() -> Result<Vec<String>> {
    let mut names: Vec<String> = MODULES.iter().map(|m| m.to_string()).collect();
    names.push(php_module().context(
        "no PHP Apache module in /etc/apache2/mods-available: run scripts/bootstrap.sh (libapache2-mod-php)",
    )?);
    let mut lines = Vec::new();
    for m in &names {
        let p = Path::new(MODS_AVAILABLE).join(format!("{m}.load"));
        let text =
            std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
        let found: Vec<String> = text
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with("LoadModule "))
            .map(str::to_string)
            .collect();
        if found.is_empty() {
            bail!("{} has no LoadModule line", p.display());
        }
        lines.extend(found);
    }
    Ok(lines)
}

/// `php8.2` for mods-available/php8.2.load (the highest version when several).
fn php_module() -> Option<String> {
    let mut v: Vec<(Vec<u32>, String)> = std::fs::read_dir(MODS_AVAILABLE)
        .ok()?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let m = name.strip_suffix(".load")?;
            let ver = m.strip_prefix("php")?;
            let nums: Option<Vec<u32>> = ver.split('.').map(|x| x.parse().ok()).collect();
            Some((nums?, m.to_string()))
        })
        .collect();
    v.sort();
    v.pop().map(|(_, m)| m)
}

/// The instance's whole configuration.
pub fn config(dir: &Path, node: &str, listen: SocketAddr, load: &[String]) -> String {
    let d = dir.display();
    let mut c = String::new();
    let _ = writeln!(
        c,
        "# Generated by lbctl for server {node}; Apache + PHP in the node's namespace.\n\
         # Started as: {APACHE_BIN} -f {d}/apache2.conf -DFOREGROUND"
    );
    let _ = writeln!(c, "ServerRoot \"{d}\"");
    let _ = writeln!(c, "DefaultRuntimeDir \"{d}\"");
    let _ = writeln!(c, "PidFile \"{d}/apache2.pid\"");
    let _ = writeln!(c, "Mutex file:{d} default");
    let _ = writeln!(c, "ServerName {node}");
    let _ = writeln!(c, "ServerTokens Prod\nServerSignature Off\nTraceEnable Off");
    let _ = writeln!(c, "User {RUN_USER}\nGroup {RUN_USER}");
    for l in load {
        let _ = writeln!(c, "{l}");
    }
    let _ = writeln!(c, "Listen {listen}");
    if !listen.ip().is_unspecified() && !listen.ip().is_loopback() && listen.is_ipv4() {
        let _ = writeln!(c, "Listen 127.0.0.1:{}", listen.port());
    }
    let _ = writeln!(
        c,
        "Timeout 30\nKeepAlive On\nMaxKeepAliveRequests 1000\nKeepAliveTimeout 5\n\
         <IfModule mpm_prefork_module>\n    StartServers 2\n    MinSpareServers 2\n    \
         MaxSpareServers 8\n    ServerLimit 64\n    MaxRequestWorkers 64\n    \
         MaxConnectionsPerChild 0\n</IfModule>"
    );
    // Apache writes its logs itself, through Apache's own rotatelogs (apache2-utils, which
    // apache2 depends on): the same cap as the supervisor's logs (logs::rotate), with
    // rotatelogs' circular names (`lbctl logs` orders the files by time).
    let rot = format!(
        "|{ROTATELOGS} -n {} {d}/{{}} {}M",
        crate::logs::rotate::FILES,
        crate::logs::rotate::MAX_BYTES >> 20
    );
    let _ = writeln!(
        c,
        "ErrorLog \"{}\"\nLogLevel warn",
        rot.replace("{}", "error.log")
    );
    let _ = writeln!(
        c,
        "LogFormat \"%h %l %u %t \\\"%r\\\" %>s %O \\\"%{{Referer}}i\\\" \\\"%{{User-Agent}}i\\\"\" combined"
    );
    let _ = writeln!(
        c,
        "CustomLog \"{}\" combined",
        rot.replace("{}", "access.log")
    );
    let types = if Path::new("/etc/mime.types").exists() {
        "/etc/mime.types".to_string()
    } else {
        let p = dir.join("mime.types");
        let _ = std::fs::write(&p, "");
        p.display().to_string()
    };
    let _ = writeln!(c, "TypesConfig \"{types}\"\nAddDefaultCharset utf-8");
    let _ = writeln!(
        c,
        "DocumentRoot \"{d}/docroot\"\n\
         <Directory />\n    AllowOverride None\n    Require all denied\n</Directory>\n\
         <Directory \"{d}/docroot\">\n    Options None\n    AllowOverride None\n    Require all granted\n</Directory>\n\
         DirectoryIndex index.php\n\
         <FilesMatch \"\\.php$\">\n    SetHandler application/x-httpd-php\n</FilesMatch>\n\
         Alias /health \"{d}/docroot/health.php\""
    );
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_names_the_server_and_prints_the_client_address() {
        let p = index_php("serv1");
        assert!(p.contains("Esto es el servidor serv1"));
        assert!(p.contains(
            "El cliente que ha pedido esta pagina tiene direccion: <?php echo $_SERVER['REMOTE_ADDR']; ?>"
        ));
    }

    #[test]
    fn config_is_self_contained() {
        let dir = Path::new("/run/lbctl/lab/apache/serv1");
        let c = config(
            dir,
            "serv1",
            "10.0.0.1:80".parse().unwrap(),
            &["LoadModule x /y.so".into()],
        );
        for want in [
            "ServerRoot \"/run/lbctl/lab/apache/serv1\"",
            "PidFile \"/run/lbctl/lab/apache/serv1/apache2.pid\"",
            "DefaultRuntimeDir \"/run/lbctl/lab/apache/serv1\"",
            "Mutex file:/run/lbctl/lab/apache/serv1 default",
            "ErrorLog \"|/usr/bin/rotatelogs -n 3 /run/lbctl/lab/apache/serv1/error.log 4M\"",
            "CustomLog \"|/usr/bin/rotatelogs -n 3 /run/lbctl/lab/apache/serv1/access.log 4M\" combined",
            "Listen 10.0.0.1:80\n",
            "Listen 127.0.0.1:80\n",
            "LoadModule x /y.so\n",
            "Alias /health",
        ] {
            assert!(c.contains(want), "missing {want:?} in:\n{c}");
        }
        assert!(!c.contains("APACHE_"), "{c}");
        assert!(!c.contains("/var/run"), "{c}");
        assert!(!c.contains("/etc/apache2"), "{c}");
        let any = config(dir, "serv1", "0.0.0.0:8080".parse().unwrap(), &[]);
        assert!(any.contains("Listen 0.0.0.0:8080\n") && !any.contains("127.0.0.1"));
    }

    /// When Apache is installed, the generated config passes `apache2 -t`.
    #[test]
    fn generated_config_passes_apache_configtest() {
        if !Path::new(APACHE_BIN).exists() || php_module().is_none() {
            return crate::test_prereq::skip(
                "apache2 or mod_php not installed (apt-get install -y apache2 libapache2-mod-php)",
            );
        }
        let tmp = tempfile::tempdir().unwrap();
        let conf = write_instance(tmp.path(), "serv1", "127.0.0.1:8080".parse().unwrap()).unwrap();
        let out = Command::new(APACHE_BIN)
            .arg("-t")
            .arg("-f")
            .arg(&conf)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
