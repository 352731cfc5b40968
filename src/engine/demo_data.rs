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
}

impl Default for DemoDataOptions {
    fn default() -> Self {
        Self { users: 1000, files: 4, seed: 42 }
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
