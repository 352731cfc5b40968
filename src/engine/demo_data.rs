//! The demo data set: users as JSON lines in `landing/users`, and a `bronze/ssn` Delta table.
//!
//! Deterministic for a given seed, so tests and benchmarks can name exact figures.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use super::{EngineError, Result, delta};

const FIRST_NAMES: &[&str] = &[
    "Ada",
    "Grace",
    "Alan",
    "Edsger",
    "Barbara",
    "Donald",
    "Margaret",
    "Ken",
    "Radia",
    "Linus",
    "Frances",
    "John",
    "Katherine",
    "Dennis",
    "Hedy",
    "Tim",
    "Sophie",
    "Guido",
    "Anita",
    "Niklaus",
];
const LAST_NAMES: &[&str] = &[
    "Lovelace",
    "Hopper",
    "Turing",
    "Dijkstra",
    "Liskov",
    "Knuth",
    "Hamilton",
    "Thompson",
    "Perlman",
    "Torvalds",
    "Allen",
    "Backus",
    "Johnson",
    "Ritchie",
    "Lamarr",
    "Berners-Lee",
    "Wilson",
    "van Rossum",
    "Borg",
    "Wirth",
];
const TITLES: &[&str] = &[
    "Data Engineer",
    "Analytics Engineer",
    "Data Scientist",
    "Software Engineer",
    "Product Manager",
    "Site Reliability Engineer",
    "Data Analyst",
    "Architect",
];
const SKILLS: &[&str] = &[
    "Spark",
    "SQL",
    "Python",
    "Rust",
    "Kafka",
    "Delta Lake",
    "Airflow",
    "dbt",
    "Scala",
    "Kubernetes",
    "Terraform",
    "Statistics",
];
const GENDERS: &[&str] = &["Female", "Male", "Non-binary"];

/// Options of `medallion demo-data`.
#[derive(Clone, Debug)]
pub struct DemoDataOptions {
    pub users: u64,
    pub files: u32,
    pub seed: u64,
    /// Ad impressions (and their clicks) for the stateful example, in `landing/impressions`
    /// and `landing/clicks` (see `demo_ads`).
    pub impressions: u64,
}

impl Default for DemoDataOptions {
    fn default() -> Self {
        Self { users: 1000, files: 4, seed: 42, impressions: 2000 }
    }
}

/// What `write_demo_data` wrote.
#[derive(Clone, Debug)]
pub struct DemoDataSummary {
    pub user_files: Vec<PathBuf>,
    pub users: u64,
    pub ssn_rows: u64,
    pub ssn_table: PathBuf,
}

#[derive(Serialize)]
pub(crate) struct Employment<'a> {
    pub title: &'a str,
    #[serde(rename = "keySkills")]
    pub key_skills: Vec<&'a str>,
}

#[derive(Serialize)]
pub(crate) struct User<'a> {
    pub uuid: String,
    pub id: i64,
    pub first_name: &'a str,
    pub last_name: &'a str,
    pub date_of_birth: String,
    pub gender: &'a str,
    pub email: String,
    pub employment: Employment<'a>,
}

/// The DDL of the demo users, as the landing files hold them.
pub const USERS_DDL: &str = "uuid STRING, id BIGINT, first_name STRING, last_name STRING, \
    date_of_birth STRING, gender STRING, email STRING, \
    employment STRUCT<title: STRING, keySkills: ARRAY<STRING>>";

/// Id of the `n`th user (0-based); ids are unique and not dense, like real keys.
pub fn user_id(n: u64) -> i64 {
    (1_000 + n * 7) as i64
}

/// Writes the user files and the ssn table under `dir`.
pub async fn write_demo_data(dir: &Path, opts: &DemoDataOptions) -> Result<DemoDataSummary> {
    let files = opts.files.max(1);
    let landing = dir.join("landing").join("users");
    std::fs::create_dir_all(&landing).map_err(|e| EngineError::io(&landing, e))?;
    let mut rng = StdRng::seed_from_u64(opts.seed);
    let per_file = opts.users.div_ceil(u64::from(files));
    let mut user_files = Vec::new();
    let mut ssn_ids = Vec::new();
    let mut ssns = Vec::new();
    let mut n = 0u64;
    for f in 0..files {
        let path = landing.join(format!("part-{f:05}.json"));
        let file = std::fs::File::create(&path).map_err(|e| EngineError::io(&path, e))?;
        let mut out = std::io::BufWriter::new(file);
        let end = (n + per_file).min(opts.users);
        while n < end {
            let user = random_user(&mut rng, n);
            serde_json::to_writer(&mut out, &user).map_err(|e| EngineError::io(&path, e.into()))?;
            out.write_all(b"\n").map_err(|e| EngineError::io(&path, e))?;
            if rng.random_bool(0.9) {
                ssn_ids.push(user.id);
                ssns.push(format!(
                    "{:03}-{:02}-{:04}",
                    rng.random_range(100..900),
                    rng.random_range(10..100),
                    rng.random_range(1000..10000)
                ));
            }
            n += 1;
        }
        out.flush().map_err(|e| EngineError::io(&path, e))?;
        user_files.push(path);
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("user_id", DataType::Int64, false),
        Field::new("ssn", DataType::Utf8, false),
    ]));
    let ssn_rows = ssn_ids.len() as u64;
    let batch = RecordBatch::try_new(
        schema,
        vec![Arc::new(Int64Array::from(ssn_ids)), Arc::new(StringArray::from(ssns))],
    )?;
    let ssn_table = dir.join("bronze").join("ssn");
    let meta = delta::CommitMeta::tool("demo-data");
    delta::overwrite_batches(&ssn_table, vec![batch], &meta).await?;
    if opts.impressions > 0 {
        super::demo_ads::write_ad_events(dir, opts.impressions, 8, opts.seed)?;
    }
    Ok(DemoDataSummary { user_files, users: opts.users, ssn_rows, ssn_table })
}

pub(crate) fn random_user(rng: &mut StdRng, n: u64) -> User<'static> {
    let pick = |rng: &mut StdRng, xs: &'static [&'static str]| xs[rng.random_range(0..xs.len())];
    let first_name = pick(rng, FIRST_NAMES);
    let last_name = pick(rng, LAST_NAMES);
    let id = user_id(n);
    let mut bytes = [0u8; 16];
    rng.fill(&mut bytes);
    let uuid = uuid::Builder::from_random_bytes(bytes).into_uuid().to_string();
    let skills = rng.random_range(1..=4);
    let mut key_skills: Vec<&str> = Vec::with_capacity(skills);
    while key_skills.len() < skills {
        let s = pick(rng, SKILLS);
        if !key_skills.contains(&s) {
            key_skills.push(s);
        }
    }
    User {
        uuid,
        id,
        first_name,
        last_name,
        date_of_birth: format!(
            "{}-{:02}-{:02}",
            rng.random_range(1950..2006),
            rng.random_range(1..=12),
            rng.random_range(1..=28)
        ),
        gender: pick(rng, GENDERS),
        email: format!(
            "{}.{}{}@example.com",
            first_name.to_lowercase(),
            last_name.to_lowercase().replace(' ', ""),
            id
        ),
        employment: Employment { title: pick(rng, TITLES), key_skills },
    }
}

/// Options of `medallion demo-data DIR --kafka BROKERS --topic T --events N`.
#[derive(Clone, Debug)]
pub struct MusicEventsOptions {
    pub brokers: String,
    pub topic: String,
    pub events: u64,
    pub partitions: i32,
    pub seed: u64,
}

const GENRES: &[&str] = &["rock", "jazz", "techno", "classical", "hip-hop", "folk", "ambient"];
const ARTISTS: &[&str] = &[
    "The Lakehouse Five",
    "Delta Blues Trio",
    "Kafka on the Shore",
    "Spark Plug",
    "Parquet Floor",
    "Medallion Men",
    "Bronze Age",
    "Silver Lining",
    "Gold Standard",
    "Checkpoint Charlie",
];

/// One demo music event as JSON text: user_id, track_id, artist, title, genre, duration_ms,
/// played_at.
pub fn music_event_json(rng: &mut StdRng, n: u64) -> String {
    let artist = ARTISTS[rng.random_range(0..ARTISTS.len())];
    let genre = GENRES[rng.random_range(0..GENRES.len())];
    let track = rng.random_range(1..5000u32);
    let played_at = chrono::DateTime::from_timestamp(1_795_000_000 + n as i64 * 3, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    serde_json::json!({
        "user_id": user_id(rng.random_range(0..1000)),
        "track_id": format!("trk-{track:05}"),
        "artist": artist,
        "title": format!("Song {track}"),
        "genre": genre,
        "duration_ms": rng.random_range(90_000..420_000),
        "played_at": played_at,
    })
    .to_string()
}

/// The DDL of the demo music events.
pub const MUSIC_DDL: &str = "user_id BIGINT, track_id STRING, artist STRING, title STRING, \
    genre STRING, duration_ms BIGINT, played_at TIMESTAMP";

/// Produces demo music events to a topic (created with `partitions` partitions if missing).
pub async fn produce_music_events(opts: &MusicEventsOptions) -> Result<u64> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let brokers = crate::model::env::expand(&opts.brokers)?;
    let mut cfg = rdkafka::ClientConfig::new();
    cfg.set("bootstrap.servers", &brokers).set("log_level", "3");
    let admin: AdminClient<DefaultClientContext> =
        cfg.create().map_err(|e| EngineError::Broker(format!("{brokers}: {e}")))?;
    let topic = NewTopic::new(&opts.topic, opts.partitions, TopicReplication::Fixed(1));
    let results = admin
        .create_topics([&topic], &AdminOptions::new())
        .await
        .map_err(|e| EngineError::Broker(format!("cannot create topic {}: {e}", opts.topic)))?;
    for r in results {
        if let Err((name, code)) = r
            && code != rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists
        {
            return Err(EngineError::Broker(format!("cannot create topic {name}: {code}")));
        }
    }
    let producer: FutureProducer = cfg
        .clone()
        .set("enable.idempotence", "true")
        .set("linger.ms", "20")
        .create()
        .map_err(|e| EngineError::Broker(format!("{brokers}: {e}")))?;
    let mut rng = StdRng::seed_from_u64(opts.seed);
    let mut sent = 0u64;
    let mut pending = Vec::new();
    for n in 0..opts.events {
        let value = music_event_json(&mut rng, n);
        let key = n.to_string();
        let p = producer.clone();
        let topic = opts.topic.clone();
        pending.push(async move {
            p.send(
                FutureRecord::to(&topic).payload(&value).key(&key),
                std::time::Duration::from_secs(30),
            )
            .await
            .map(|_| ())
            .map_err(|(e, _)| EngineError::Broker(format!("produce failed: {e}")))
        });
        if pending.len() >= 10_000 {
            for r in futures::future::join_all(pending.drain(..)).await {
                r?;
                sent += 1;
            }
        }
    }
    for r in futures::future::join_all(pending).await {
        r?;
        sent += 1;
    }
    Ok(sent)
}
