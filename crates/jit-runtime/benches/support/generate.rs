//! Generates a synthetic app tree for benchmarks: `families` element families, each with a
//! Meta, `types` Types (with a functionList) and instances (with a config file holding a
//! `{{VAR}}` placeholder), `total` elements in all.

use std::path::Path;

/// Writes the tree under `dir` (app.toml + elements/); returns the number of elements.
pub fn generate_app(dir: &Path, total: usize) -> usize {
    const FAMILIES: usize = 20;
    const TYPES: usize = 9;
    std::fs::create_dir_all(dir.join("elements")).expect("mkdir");
    std::fs::write(
        dir.join("app.toml"),
        "[app]\nname = \"bench\"\norg = \"bench\"\n[env]\nBENCH_SECRET = \"s3cr3t\"\n",
    )
    .expect("app.toml");
    let per_family = total / FAMILIES;
    let instances = per_family - 1 - TYPES;
    let mut written = 0;
    let write = |rel: String, body: String| {
        let path = dir.join("elements").join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, body).expect("write");
    };
    for f in 0..FAMILIES {
        write(
            format!("fam{f}/Meta/e.json"),
            format!("{{\"title\": \"Family {f}\", \"type\": \"\", \"backendBundleEntry\": \".\"}}"),
        );
        written += 1;
        for t in 0..TYPES {
            write(
                format!("fam{f}/Type{t}/e.json"),
                format!(
                    r#"{{
  "title": "Type {t}",
  "type": "fam{f}.Meta",
  "backendBundleEntry": ".",
  "secretKeys": ["apiKey"],
  "region": "cn",
  "functionList": [
    {{"name": "create", "title": "Create", "args": [
      {{"name": "subject", "dataType": "Stext"}},
      {{"name": "amount", "dataType": "Integer"}},
      {{"name": "note", "dataType": "Ltext", "required": false}}
    ], "returnType": "JSON"}},
    {{"name": "query", "args": [{{"name": "orderId", "dataType": "Stext"}}], "returnType": "JSON", "loginRequired": false}}
  ]
}}"#
                ),
            );
            written += 1;
        }
        for i in 0..instances {
            let t = i % TYPES;
            // Spread instances over nested folders, as real apps group them.
            let group = i % 7;
            write(
                format!("fam{f}/g{group}/inst{i}/e.json"),
                format!(
                    r#"{{"title": "Instance {i}", "type": "fam{f}.Type{t}", "mchId": "19000{i:05}", "description": "generated"}}"#
                ),
            );
            write(
                format!("fam{f}/g{group}/inst{i}/inst{i}.json"),
                format!(
                    r#"{{"apiKey": "{{{{BENCH_SECRET}}}}", "notifyUrl": "https://example.com/{f}/{i}"}}"#
                ),
            );
            written += 1;
        }
    }
    written
}
