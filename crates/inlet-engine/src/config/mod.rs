//! The pipeline definition: a TOML file (`${NAME}` taken from the environment into its
//! values), one section per concern, each checking itself, resolved into one [`Config`].

mod aws;
mod env;
mod location;
mod maintenance;
mod schema;
mod sink;
mod source;
mod unity;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use arrow::datatypes::Field;
use serde::Deserialize;
use url::Url;

pub use aws::AwsSection;
pub use maintenance::MaintenanceSection;
pub use schema::SchemaSection;
pub use sink::{
    CheckpointSection, MergeStrategyChoice, RemoteCheckpoint, SinkMode, SinkSection,
    StrategyDecision, TableFacts, TransformSection, TriggerSection,
};
pub use source::{
    CleanSource, CleanSourceKind, Discovery, DiscoveryKind, ListingKind, Notifications, Source,
    SourceSection,
};
pub use unity::{UnitySection, UnityTarget};

/// A config that cannot be used, with the file, the line or key, and what to do.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config {path}, line {line}: {message}")]
    Syntax {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("config {path}, line {line}: environment variable {name} is not set (write $${{...}} for a literal ${{...}})")]
    MissingEnv {
        path: PathBuf,
        line: usize,
        name: String,
    },
    #[error("config {path}: {key} = '{value}' is not valid: {reason}")]
    Value {
        path: PathBuf,
        key: &'static str,
        value: String,
        reason: String,
    },
}

/// The whole file, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Names the pipeline: the `txn` appId in the table, and the checkpoint's owner.
    pub pipeline_id: String,
    pub source: SourceSection,
    #[serde(default)]
    pub schema: SchemaSection,
    #[serde(default)]
    pub transform: TransformSection,
    pub sink: SinkSection,
    pub checkpoint: CheckpointSection,
    #[serde(default)]
    pub trigger: TriggerSection,
    #[serde(default)]
    pub unity: UnitySection,
    #[serde(default)]
    pub maintenance: MaintenanceSection,
    #[serde(default)]
    pub aws: AwsSection,
}

fn is_s3(url: &str) -> bool {
    url.starts_with("s3://") || url.starts_with("s3a://")
}

/// The resolved config a run uses.
#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub pipeline_id: String,
    pub source: Source,
    pub schema: SchemaSection,
    /// `schema.hints`, parsed.
    pub hints: Vec<Field>,
    pub table_url: Url,
    pub transform: TransformSection,
    pub sink: SinkSection,
    /// The SQLite checkpoint's directory: the location itself, or the local cache of an
    /// `s3://` one.
    pub checkpoint_dir: PathBuf,
    /// An `s3://` checkpoint location.
    pub remote: Option<RemoteCheckpoint>,
    pub trigger: TriggerSection,
    pub maintenance: MaintenanceSection,
    /// `uc://` sinks: the catalog table; `table_url` becomes its storage location once
    /// resolved (see `catalog.rs`).
    pub unity: Option<UnityTarget>,
}

/// What a section's checks need: the file (for messages) and its directory (for paths).
pub(crate) struct Checker<'a> {
    path: &'a Path,
    base: PathBuf,
}

impl Checker<'_> {
    /// The directory relative paths are resolved against.
    fn base(&self) -> &Path {
        &self.base
    }

    /// `key = value` is not valid, for `reason`.
    fn bad(&self, key: &'static str, value: &str, reason: &str) -> ConfigError {
        ConfigError::Value {
            path: self.path.to_path_buf(),
            key,
            value: value.to_string(),
            reason: reason.to_string(),
        }
    }
}

/// `[checkpoint]`: the SQLite directory, and for an `s3://` location the remote side with
/// its options (`[aws]` applied) and the local cache directory.
fn checkpoint_location(
    check: &Checker<'_>,
    file: &ConfigFile,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(PathBuf, Option<RemoteCheckpoint>), ConfigError> {
    let c = &file.checkpoint;
    if !c.location.contains("://") {
        let only_s3 = [
            ("checkpoint.cache_dir", c.cache_dir.is_some()),
            ("checkpoint.storage_options", !c.storage_options.is_empty()),
        ];
        if let Some((key, _)) = only_s3.iter().find(|(_, set)| *set) {
            return Err(check.bad(
                key,
                "(set)",
                "only an s3:// checkpoint.location has a cache or storage options",
            ));
        }
        return Ok((location::normalize(&check.base().join(&c.location)), None));
    }
    let url = Url::parse(&c.location)
        .ok()
        .filter(|u| is_s3(u.as_str()) && u.host_str().is_some_and(|h| !h.is_empty()))
        .ok_or_else(|| {
            check.bad(
                "checkpoint.location",
                &c.location,
                "give a local directory or s3://bucket/prefix",
            )
        })?;
    if url.path().trim_matches('/').is_empty() {
        return Err(check.bad(
            "checkpoint.location",
            &c.location,
            "give a prefix inside the bucket (s3://bucket/checkpoints/<pipeline>): the checkpoint's objects must not mix with other data",
        ));
    }
    if c.lease_ttl < Duration::from_secs(1) {
        return Err(check.bad(
            "checkpoint.lease_ttl",
            &format!("{:?}", c.lease_ttl),
            "must be at least 1s",
        ));
    }
    let mut storage_options = if !c.storage_options.is_empty() {
        c.storage_options.clone()
    } else if is_s3(&file.source.url) {
        file.source.storage_options.clone()
    } else {
        file.sink.storage_options.clone()
    };
    file.aws.apply(&mut storage_options);
    let cache = match &c.cache_dir {
        Some(dir) => check.base().join(dir),
        None => {
            let root = env("INLET_CACHE_DIR")
                .map(PathBuf::from)
                .or_else(|| env("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("inlet")))
                .or_else(|| env("HOME").map(|d| PathBuf::from(d).join(".cache/inlet")))
                .ok_or_else(|| {
                    check.bad(
                        "checkpoint.cache_dir",
                        "(unset)",
                        "no INLET_CACHE_DIR, XDG_CACHE_HOME or HOME to put the checkpoint's local cache under; set checkpoint.cache_dir",
                    )
                })?;
            let mut dir = root
                .join("checkpoints")
                .join(url.host_str().unwrap_or_default());
            for part in url
                .path()
                .split('/')
                .filter(|p| !p.is_empty() && *p != "." && *p != "..")
            {
                dir.push(part);
            }
            dir
        }
    };
    let remote = RemoteCheckpoint {
        url: Url::parse(&format!("{}/", c.location.trim_end_matches('/'))).unwrap_or(url),
        storage_options,
        lease_ttl: c.lease_ttl,
        snapshot_interval: c.snapshot_interval,
    };
    Ok((location::normalize(&cache), Some(remote)))
}

impl Config {
    /// Reads, parses and checks the config at `path`, taking `${NAME}` from the environment.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &text, &|name| std::env::var(name).ok())
    }

    /// Parses config `text` (read from `path`, whose directory relative paths are resolved
    /// against), taking `${NAME}` in string values from `env`, and checks every section.
    pub fn parse(
        path: &Path,
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let table = env::parse(path, text, env)?;
        let mut file = ConfigFile::deserialize(toml::de::Deserializer::from(table))
            .map_err(|e| env::syntax(path, text, &e))?;
        let base = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let check = Checker {
            path,
            base: std::path::absolute(&base).unwrap_or(base),
        };
        if file.pipeline_id.is_empty()
            || !file
                .pipeline_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
        {
            return Err(check.bad(
                "pipeline_id",
                &file.pipeline_id,
                "use letters, digits, '_', '-' and '.' only",
            ));
        }
        let unity = unity::unity_target(path, &file, env)?;
        let table_url = match &unity {
            // Resolved to the table's storage location at start.
            Some(t) => Url::parse(&format!("uc://{}/", t.name.full()))
                .map_err(|e| check.bad("sink.table", &file.sink.table, &e.to_string()))?,
            None => location::location_url(check.base(), &file.sink.table, true)
                .map_err(|r| check.bad("sink.table", &file.sink.table, &r))?,
        };
        if file.trigger.interval_seconds == 0 {
            return Err(check.bad("trigger.interval_seconds", "0", "must be at least 1"));
        }
        let (checkpoint_dir, remote) = checkpoint_location(&check, &file, env)?;
        file.sink.check(&check)?;
        file.maintenance.check(&check)?;
        file.aws.check(&check)?;
        if is_s3(&file.source.url) {
            file.aws.apply(&mut file.source.storage_options);
        }
        if matches!(table_url.scheme(), "s3" | "s3a") {
            file.aws.apply(&mut file.sink.storage_options);
        }
        let hints = file.schema.check(&check, file.source.format)?;
        let bad_records_root = match &remote {
            Some(r) => r.url.clone(),
            None => Url::from_directory_path(&checkpoint_dir).map_err(|()| {
                check.bad(
                    "checkpoint.location",
                    &checkpoint_dir.display().to_string(),
                    "not an absolute path",
                )
            })?,
        };
        let source = file.source.resolve(&check, &bad_records_root)?;
        Ok(Self {
            path: path.to_path_buf(),
            pipeline_id: file.pipeline_id,
            source,
            schema: file.schema,
            hints,
            table_url,
            unity,
            transform: file.transform,
            sink: file.sink,
            checkpoint_dir,
            remote,
            trigger: file.trigger,
            maintenance: file.maintenance,
        })
    }

    /// The checkpoint as messages name it: the `s3://` location, or the directory.
    pub fn checkpoint_name(&self) -> String {
        match &self.remote {
            Some(r) => r.url.to_string(),
            None => self.checkpoint_dir.display().to_string(),
        }
    }

    /// The rescued data column, `None` when turned off.
    pub fn rescued_column(&self) -> Option<&str> {
        Some(self.schema.rescued_data_column.as_str()).filter(|c| !c.is_empty())
    }

    /// The options bad records are written with: an `s3://` checkpoint's when they go under
    /// it (the default), else the source's.
    pub fn bad_records_options(&self) -> HashMap<String, String> {
        match &self.remote {
            Some(r) if self.source.bad_records.as_str().starts_with(r.url.as_str()) => {
                r.storage_options.clone().into_iter().collect()
            }
            _ => self.source_options(),
        }
    }

    pub fn source_options(&self) -> HashMap<String, String> {
        self.source.storage_options.clone().into_iter().collect()
    }

    pub fn sink_options(&self) -> HashMap<String, String> {
        self.sink.storage_options.clone().into_iter().collect()
    }

    /// How to read the queue, when discovery is by notifications.
    pub fn notification_options(&self) -> Option<inlet_discover::NotificationOptions> {
        self.source
            .notifications()
            .map(|n| inlet_discover::NotificationOptions {
                queue_url: n.queue_url.clone(),
                endpoint: n.endpoint.clone(),
                aws: inlet_aws::AwsSettings::split(&self.source_options()).0,
                max_messages: n.batch_size,
                max_wait_seconds: i32::try_from(n.wait.as_secs()).unwrap_or(20),
                // A quarter of the batch wait (at most 1 s): fuller receives at a trickle,
                // for a small share of the latency a batch already waits.
                receive_pause: (n.max_batch_wait / 4).min(std::time::Duration::from_secs(1)),
                visibility_timeout: n.visibility_timeout,
                path_glob: self.source.path_glob.clone(),
                skip_export_manifests: self.source.format.is_dynamodb(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const GOOD: &str = r#"
pipeline_id = "p1"
[source]
url = "landing"
[sink]
table = "s3://lake/${TABLE}"
[checkpoint]
location = "state"
"#;

    fn env(name: &str) -> Option<String> {
        (name == "TABLE").then(|| "events".to_string())
    }

    #[test]
    fn resolves_paths_and_env() {
        let text = GOOD.replace("\"state\"", "\"../var/./state\"");
        let cfg = Config::parse(Path::new("/etc/inlet/p.toml"), &text, &env).expect("parse");
        assert_eq!(cfg.source.url.as_str(), "file:///etc/inlet/landing/");
        assert_eq!(cfg.table_url.as_str(), "s3://lake/events/");
        assert_eq!(cfg.checkpoint_dir, PathBuf::from("/etc/var/state"));
        assert_eq!(cfg.source.max_files_per_batch, 1000);
    }

    #[test]
    fn the_merge_strategy_follows_the_config_and_the_table() {
        use inlet_delta::MergeStrategy::{CopyOnWrite, DeletionVectors};
        let merge = |extra: &str| {
            let text = GOOD.replace(
                "[sink]\n",
                &format!(
                    "[sink]\nmode = \"merge\"\nkeys = [\"id\"]\nsequence_by = \"seq\"\n{extra}\n"
                ),
            );
            Config::parse(Path::new("p.toml"), &text, &env)
        };
        let facts = |dv, cdf| {
            Some(TableFacts {
                deletion_vectors: dv,
                change_feed: cdf,
                column_mapping: false,
                vectors_property: dv,
            })
        };
        let unset = merge("").expect("parse").sink;
        let d = unset.merge_strategy_for(None);
        assert_eq!((d.strategy, d.upgrade), (DeletionVectors, false));
        assert_eq!(
            unset
                .create_properties()
                .get("delta.enableDeletionVectors")
                .map(String::as_str),
            Some("true")
        );
        assert_eq!(
            unset.merge_strategy_for(facts(true, false)).strategy,
            DeletionVectors
        );
        assert_eq!(
            unset.merge_strategy_for(facts(false, false)).strategy,
            CopyOnWrite
        );
        assert_eq!(
            unset.merge_strategy_for(facts(true, true)).strategy,
            CopyOnWrite
        );
        let dv = merge("merge_strategy = \"deletion_vectors\"")
            .expect("parse")
            .sink;
        let d = dv.merge_strategy_for(facts(false, false));
        assert_eq!((d.strategy, d.upgrade), (DeletionVectors, true));
        let mapped = Some(TableFacts {
            deletion_vectors: false,
            change_feed: false,
            column_mapping: true,
            vectors_property: false,
        });
        let d = dv.merge_strategy_for(mapped);
        assert_eq!(
            (d.strategy, d.upgrade),
            (CopyOnWrite, false),
            "no upgrade loop"
        );
        let cow = merge("merge_strategy = \"copy_on_write\"")
            .expect("parse")
            .sink;
        assert_eq!(cow.merge_strategy_for(None).strategy, CopyOnWrite);
        assert!(cow.create_properties().is_empty());
        let feed = merge("properties = { \"delta.enableChangeDataFeed\" = \"true\" }")
            .expect("parse")
            .sink;
        assert_eq!(feed.merge_strategy_for(None).strategy, CopyOnWrite);
        assert!(!feed
            .create_properties()
            .contains_key("delta.enableDeletionVectors"));
        let both = merge(
            "merge_strategy = \"deletion_vectors\"\nproperties = { \"delta.enableChangeDataFeed\" = \"true\" }",
        )
        .expect_err("contradiction");
        assert!(
            both.to_string()
                .contains("does not write change data files"),
            "{both}"
        );
        let off = merge(
            "merge_strategy = \"deletion_vectors\"\nproperties = { \"delta.enableDeletionVectors\" = \"false\" }",
        )
        .expect_err("contradiction");
        assert!(off.to_string().contains("contradicts"), "{off}");
        let append = GOOD.replace("[sink]\n", "[sink]\nmerge_strategy = \"copy_on_write\"\n");
        let err = Config::parse(Path::new("p.toml"), &append, &env).expect_err("append");
        assert!(err.to_string().contains("sink.merge_strategy"), "{err}");
    }

    /// docs/config.md, section by section (`""` is the top level): the keys its table names.
    fn documented_keys() -> std::collections::BTreeMap<String, std::collections::BTreeSet<String>> {
        let doc = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/config.md"),
        )
        .expect("docs/config.md");
        let mut out = std::collections::BTreeMap::new();
        let mut section = String::new();
        for line in doc.lines().filter(|l| l.starts_with("| ")) {
            let first = line[2..].split(" |").next().unwrap_or_default();
            if let Some(name) = first
                .strip_prefix("**`[")
                .and_then(|n| n.strip_suffix("]`**"))
            {
                section = name.to_string();
                continue;
            }
            let keys: Vec<String> = first
                .split(", ")
                .filter_map(|k| k.strip_prefix('`')?.strip_suffix('`').map(str::to_string))
                .collect();
            if keys.is_empty() || first == "key" {
                continue;
            }
            out.entry(section.clone())
                .or_insert_with(std::collections::BTreeSet::new)
                .extend(keys);
        }
        out
    }

    /// The keys the code accepts in `section`, from serde's "expected one of" for an
    /// unknown key there.
    fn accepted_keys(section: &str) -> std::collections::BTreeSet<String> {
        let base =
            format!("{GOOD}[schema]\n[transform]\n[trigger]\n[maintenance]\n[unity]\n[aws]\n");
        let text = if section.is_empty() {
            format!("zz_unknown = 1\n{base}")
        } else if section == "source.csv" {
            base.replace("[source]\n", "[source]\nformat = \"csv\"\n")
                + "[source.csv]\nzz_unknown = 1\n"
        } else {
            base.replace(
                &format!("[{section}]\n"),
                &format!("[{section}]\nzz_unknown = 1\n"),
            )
        };
        let err = Config::parse(Path::new("p.toml"), &text, &env)
            .expect_err("an unknown key")
            .to_string();
        // "expected `a`", "expected `a` or `b`", "expected one of `a`, `b`, ...".
        let list = err
            .split("expected ")
            .nth(1)
            .unwrap_or_else(|| panic!("[{section}]: {err}"));
        list.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn every_key_is_documented_and_every_documented_key_is_accepted() {
        let documented = documented_keys();
        for section in [
            "",
            "source",
            "source.csv",
            "schema",
            "transform",
            "sink",
            "unity",
            "checkpoint",
            "trigger",
            "maintenance",
            "aws",
        ] {
            let mut accepted = accepted_keys(section);
            let docs = documented.get(section).cloned().unwrap_or_default();
            if section.is_empty() {
                // The sections themselves are keys of the top level.
                accepted.retain(|k| !documented.contains_key(k.as_str()));
            }
            if section == "source" {
                accepted.remove("csv");
            }
            assert_eq!(
                accepted, docs,
                "[{section}]: accepted by the code (left) and documented in docs/config.md (right)"
            );
        }
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let text = GOOD.replace("[sink]\n", "[sink]\ncolour = \"red\"\n");
        let err = Config::parse(Path::new("p.toml"), &text, &env).expect_err("unknown");
        let msg = err.to_string();
        assert!(
            msg.starts_with("config p.toml, line 6: unknown field `colour`"),
            "{msg}"
        );
        assert!(!msg.contains('\n'), "one line: {msg}");
    }

    #[test]
    fn notifications_need_a_queue_and_an_s3_source() {
        let s3 = GOOD.replace(
            "url = \"landing\"",
            "url = \"s3://landing/in/\"\ndiscovery = \"notifications\"",
        );
        let err = Config::parse(Path::new("p.toml"), &s3, &env).expect_err("no queue");
        assert!(err.to_string().contains("needs source.queue_url"), "{err}");
        let local = GOOD.replace(
            "url = \"landing\"",
            "url = \"landing\"\ndiscovery = \"notifications\"\nqueue_url = \"q\"",
        );
        let err = Config::parse(Path::new("p.toml"), &local, &env).expect_err("local");
        assert!(
            err.to_string().contains("need an s3:// source.url"),
            "{err}"
        );
        let ok = s3.replace("discovery", "queue_url = \"https://sqs.eu-west-1.amazonaws.com/1/q\"\nmax_batch_wait = \"500ms\"\nbackfill_interval = \"1h\"\ndiscovery");
        let cfg = Config::parse(Path::new("p.toml"), &ok, &env).expect("parse");
        let n = cfg.source.notifications().expect("notifications");
        assert_eq!(n.max_batch_wait, Duration::from_millis(500));
        assert_eq!(n.backfill_interval, Some(Duration::from_secs(3600)));
        assert_eq!(cfg.notification_options().map(|o| o.max_messages), Some(10));
        let bad = ok.replace("\"500ms\"", "\"soon\"");
        let err = Config::parse(Path::new("p.toml"), &bad, &env).expect_err("duration");
        assert!(
            err.to_string().contains("'soon' is not a duration"),
            "{err}"
        );
        let listing = GOOD.replace(
            "url = \"landing\"",
            "url = \"landing\"\nbackfill_interval = \"1h\"",
        );
        let err = Config::parse(Path::new("p.toml"), &listing, &env).expect_err("listing");
        assert!(
            err.to_string().contains("source.backfill_interval"),
            "{err}"
        );
    }

    #[test]
    fn incremental_listing_options_are_checked() {
        let with =
            |extra: &str| GOOD.replace("url = \"landing\"", &format!("url = \"landing\"\n{extra}"));
        let cfg =
            Config::parse(Path::new("p.toml"), &with("listing = \"auto\""), &env).expect("auto");
        assert_eq!(cfg.source.listing, ListingKind::Auto);
        assert_eq!(cfg.source.full_listing_interval, Duration::from_secs(3600));
        let cfg = Config::parse(
            Path::new("p.toml"),
            &with("listing = \"incremental\"\nfull_listing_interval = \"10m\""),
            &env,
        )
        .expect("incremental");
        assert_eq!(cfg.source.full_listing_interval, Duration::from_secs(600));
        for (extra, says) in [
            ("full_listing_interval = \"10m\"", "source.full_listing_interval"),
            ("listing = \"incremental\"\nfull_listing_interval = \"0s\"", "at least 1s"),
            ("listing = \"sometimes\"", "sometimes"),
            (
                "listing = \"auto\"\nmax_file_age = \"90m\"",
                "at most half of source.max_file_age",
            ),
            (
                "listing = \"auto\"\ndiscovery = \"notifications\"\nqueue_url = \"https://sqs.eu-west-1.amazonaws.com/1/q\"",
                "source.listing",
            ),
        ] {
            let text = with(extra).replace("url = \"landing\"", "url = \"s3://landing/in/\"");
            let err = Config::parse(Path::new("p.toml"), &text, &env).expect_err(extra);
            assert!(err.to_string().contains(says), "{extra}: {err}");
        }
    }

    #[test]
    fn format_and_clean_up_options_are_checked() {
        let with = |extra: &str| {
            GOOD.replace(
                "url = \"landing\"",
                &format!("url = \"s3://b/landing/\"\n{extra}"),
            )
        };
        let err = |extra: &str| {
            Config::parse(Path::new("p.toml"), &with(extra), &env)
                .expect_err(extra)
                .to_string()
        };
        let msg = err("format = \"csv\"\n[source.csv]\ndelimiter = \"ab\"");
        assert!(
            msg.contains("source.csv.delimiter = 'ab' is not valid: must be one ASCII character"),
            "{msg}"
        );
        let msg = err("clean_source = \"archive\"");
        assert!(msg.contains("needs source.archive_url"), "{msg}");
        let msg = err("clean_source = \"archive\"\narchive_url = \"s3://b/landing/done/\"");
        assert!(msg.contains("must be outside source.url"), "{msg}");
        let msg = err("archive_url = \"s3://b/done/\"");
        assert!(msg.contains("only with source.clean_source"), "{msg}");
        let msg = err("partition_columns = [\"date\", \"DATE\"]");
        assert!(msg.contains("named twice"), "{msg}");
        let ok = with(
            "clean_source = \"archive\"\narchive_url = \"s3://b/archive\"\nmax_file_age = \"7d\"",
        );
        let cfg = Config::parse(Path::new("p.toml"), &ok, &env).expect("parse");
        assert_eq!(
            cfg.source.clean.archive().map(Url::as_str),
            Some("s3://b/archive/")
        );
        assert_eq!(
            cfg.source.clean.after(),
            Some(Duration::from_secs(30 * 24 * 3600))
        );
        assert_eq!(
            cfg.source.max_file_age,
            Some(Duration::from_secs(7 * 24 * 3600))
        );
    }

    #[test]
    fn every_shipped_example_config_is_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config");
        let mut checked = 0;
        for entry in std::fs::read_dir(&dir).expect("config/") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "toml") {
                let text = std::fs::read_to_string(&path).expect("read");
                let any = |name: &str| {
                    Some(match name {
                        n if n.ends_with("_URL") => {
                            format!("s3://{}/p/", n.to_ascii_lowercase().replace('_', "-"))
                        }
                        n if n.ends_with("_DIR") => "/var/lib/inlet/x".to_string(),
                        _ => "x".to_string(),
                    })
                };
                Config::parse(&path, &text, &any)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                checked += 1;
            }
        }
        assert!(checked >= 7, "only {checked} example configs");
    }

    #[test]
    fn secrets_in_the_file_are_refused_without_showing_them() {
        let with = |opts: &str| {
            GOOD.replace(
                "url = \"landing\"",
                &format!("url = \"s3://b/in/\"\nstorage_options = {{ {opts} }}"),
            )
        };
        let text = with("aws_region = \"eu-west-1\", aws_secret_access_key = \"hunter2\"");
        let err = Config::parse(Path::new("p.toml"), &text, &env)
            .expect_err("literal secret")
            .to_string();
        assert!(
            err.contains("source.storage_options = 'aws_secret_access_key = ***'"),
            "{err}"
        );
        assert!(!err.contains("hunter2"), "{err}");
        let text = with("aws_session_token = \"x${TABLE}\"");
        assert!(
            Config::parse(Path::new("p.toml"), &text, &env).is_err(),
            "only a whole reference is allowed"
        );
        let text = with("aws_secret_access_key = \"${TABLE}\"");
        let cfg = Config::parse(Path::new("p.toml"), &text, &env).expect("a reference is fine");
        assert_eq!(
            cfg.source.storage_options["aws_secret_access_key"],
            "events"
        );
    }

    #[test]
    fn unity_catalog_tables_are_checked_and_their_secrets_refused() {
        let uc =
            |sink: &str, extra: &str| GOOD.replace("table = \"s3://lake/${TABLE}\"", sink) + extra;
        let cfg = Config::parse(
            Path::new("p.toml"),
            &uc("table = \"uc://main.sales.events\"", ""),
            &env,
        )
        .expect("uc");
        let target = cfg.unity.expect("a uc target");
        assert_eq!(target.name.full(), "main.sales.events");
        assert!(
            target.host.is_none() && target.auth.is_none(),
            "files and schema work without the catalog"
        );
        let with_env = |n: &str| match n {
            "DATABRICKS_HOST" => Some("ws.example".to_string()),
            "DATABRICKS_TOKEN" => Some("t".to_string()),
            other => env(other),
        };
        let cfg = Config::parse(
            Path::new("p.toml"),
            &uc("table = \"uc://main.sales.events\"", ""),
            &with_env,
        )
        .expect("uc");
        assert_eq!(
            cfg.unity.and_then(|u| u.host).as_deref(),
            Some("https://ws.example")
        );

        let err = |text: String| {
            Config::parse(Path::new("p.toml"), &text, &env)
                .expect_err("bad")
                .to_string()
        };
        assert!(err(uc("table = \"uc://main.events\"", "")).contains("uc://catalog.schema.table"));
        assert!(err(uc("table = \"uc://a.b.c\"\ncreate_table = true", ""))
            .contains("sink.storage_location = 'missing'"));
        assert!(err(uc("table = \"s3://x/y\"\ncreate_table = true", ""))
            .contains("applies to Unity Catalog tables only"));
        let literal = err(uc(
            "table = \"uc://a.b.c\"",
            "[unity]\ntoken = \"dapi-literal\"\n",
        ));
        assert!(
            literal.contains("unity.token = 'token = ***'") && !literal.contains("dapi-literal"),
            "{literal}"
        );
    }

    #[test]
    fn missing_env_and_bad_values_are_named() {
        let err = Config::parse(Path::new("p.toml"), GOOD, &|_| None).expect_err("env");
        assert_eq!(
            err.to_string(),
            "config p.toml, line 6: environment variable TABLE is not set (write $${...} for a literal ${...})"
        );
        let text = GOOD.replace("url = \"landing\"", "url = \"gs://x/y\"");
        let err = Config::parse(Path::new("p.toml"), &text, &env).expect_err("scheme");
        assert!(
            err.to_string()
                .contains("source.url = 'gs://x/y' is not valid"),
            "{err}"
        );
        let literal = GOOD.replace("landing", "land$${x}");
        let cfg = Config::parse(Path::new("/c/p.toml"), &literal, &env).expect("literal");
        assert!(
            cfg.source.url.as_str().ends_with("land$%7Bx%7D/"),
            "{}",
            cfg.source.url
        );
    }

    #[test]
    fn variables_are_taken_into_values_only() {
        // In a comment, nothing is looked up; a value holding a quote stays one value.
        let text = GOOD.replace(
            "[checkpoint]",
            "# ${NOT_SET} is only mentioned here\n[checkpoint]",
        );
        let quote = |n: &str| match n {
            "TABLE" => Some("ev\"ents".to_string()),
            _ => None,
        };
        let cfg = Config::parse(Path::new("p.toml"), &text, &quote).expect("parse");
        assert_eq!(cfg.table_url.as_str(), "s3://lake/ev%22ents/");
        // A reference outside a string is TOML the file does not parse as.
        let bare = GOOD.replace("[source]\n", "[source]\nmax_files_per_batch = ${N}\n");
        let err = Config::parse(Path::new("p.toml"), &bare, &env).expect_err("bare");
        assert!(
            err.to_string().starts_with("config p.toml, line 4:"),
            "{err}"
        );
    }

    #[test]
    fn maintenance_and_table_properties_are_checked() {
        let cfg = Config::parse(Path::new("p.toml"), GOOD, &env).expect("defaults");
        assert!(cfg.maintenance.auto_compact);
        assert_eq!(cfg.maintenance.small_below(128 << 20), 64 << 20);
        assert_eq!(
            cfg.maintenance.vacuum_interval,
            Some(Duration::from_secs(24 * 3600))
        );
        let with = |extra: &str| format!("{GOOD}{extra}");
        let off = with("[maintenance]\nvacuum_interval = \"off\"\ncompact_min_files = 10\n");
        let cfg = Config::parse(Path::new("p.toml"), &off, &env).expect("off");
        assert_eq!(cfg.maintenance.vacuum_interval, None);
        assert_eq!(cfg.maintenance.compact_min_files, 10);
        let err = |text: String| {
            Config::parse(Path::new("p.toml"), &text, &env)
                .expect_err("bad")
                .to_string()
        };
        assert!(err(with("[maintenance]\nsmall_file_fraction = 2.0\n"))
            .contains("maintenance.small_file_fraction = '2' is not valid"));
        assert!(err(with("[maintenance]\nvacuum_interval = \"daily\"\n"))
            .contains("'daily' is not a duration"));
        let props =
            |p: &str| GOOD.replace("[sink]\n", &format!("[sink]\nproperties = {{ {p} }}\n"));
        assert!(err(props("\"delta.appendOnly\" = \"yes\""))
            .contains("delta.appendOnly = 'yes' must be true or false"));
        let merge = props("\"delta.appendOnly\" = \"true\"").replace(
            "[sink]\n",
            "[sink]\nmode = \"merge\"\nkeys = [\"id\"]\nsequence_by = \"seq\"\n",
        );
        assert!(err(merge).contains("which an append-only table refuses"));
        let ok = Config::parse(
            Path::new("p.toml"),
            &props("\"delta.enableChangeDataFeed\" = \"true\", owner = \"data\""),
            &env,
        )
        .expect("ok");
        assert_eq!(ok.sink.properties.len(), 2);
    }

    #[test]
    fn notification_keys_exist_only_with_notifications() {
        let cfg = Config::parse(Path::new("p.toml"), GOOD, &env).expect("parse");
        assert_eq!(cfg.source.discovery, Discovery::Listing);
        assert!(cfg.notification_options().is_none());
        let text = GOOD.replace(
            "url = \"landing\"",
            "url = \"landing\"\nqueue_url = \"https://sqs.x/q\"",
        );
        let err = Config::parse(Path::new("p.toml"), &text, &env).expect_err("listing");
        assert!(
            err.to_string()
                .contains("is read only with source.discovery = \"notifications\""),
            "{err}"
        );
    }
}
