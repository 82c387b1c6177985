//! Issue 16, finding 10: a step's memory limit is for all of its linear memories
//! together. The hostile components here are made by the test itself (a core module
//! written with `wasm-encoder`, made a `plugin` component by `wit-component`), spread
//! their memory over several core instances, or hold more memories than a component may.

use gitauto_tests::{SECRET, TestDaemon, github_source, push_payload};
use serde_json::Value;
use std::path::Path;
use wasm_encoder::{
    CodeSection, ComponentSection, ConstExpr, DataSection, ExportKind, ExportSection, Function, FunctionSection,
    GlobalSection, GlobalType, InstanceSection, MemorySection, MemoryType, Module, ModuleArg, ModuleSection,
    TypeSection, ValType,
};

/// Bytes in a WebAssembly page.
const PAGE: u64 = 64 << 10;
/// Pages in 16 MiB: each memory alone is well under the 64 MiB limit.
const SIXTEEN_MIB: u64 = (16 << 20) / PAGE;
/// Where `handle` leaves its `result<outcome, error>` (the canonical ABI returns it by pointer).
const RETURN_AREA: i32 = 16;
/// Where the outcome's strings are.
const STRINGS: usize = 64;
/// Where `cabi_realloc` starts handing out memory for the event and settings.
const HEAP: i32 = 1024;
const SUMMARY: &str = "every memory in place";
const OUTPUT: &str = "null";

/// A hostile plugin: memories in its own core module, memories in extra core instances
/// that sit next to it in the component, and a growth `handle` makes before it returns.
struct Hostile {
    /// Minimum pages of each memory the plugin's module declares; the first is exported
    /// as `memory` and used by the canonical ABI.
    own: Vec<u64>,
    /// Minimum pages of each extra core instance's one memory.
    extra: Vec<u64>,
    /// Pages `handle` adds to its `memory` before returning.
    grow: u32,
}

impl Hostile {
    /// `count` memories of 16 MiB, one per core instance.
    fn spread(count: usize) -> Self {
        Self { own: vec![SIXTEEN_MIB], extra: vec![SIXTEEN_MIB; count - 1], grow: 0 }
    }

    /// The component's bytes.
    fn component(&self) -> Vec<u8> {
        let mut module = self.plugin_module().finish();
        let mut resolve = wit_parser::Resolve::default();
        let (package, _) = resolve.push_path(Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit")).unwrap();
        let world = resolve.select_world(&[package], Some("plugin")).unwrap();
        wit_component::embed_component_metadata(
            &mut module,
            &resolve,
            world,
            wit_component::StringEncoding::UTF8,
            false,
        )
        .unwrap();
        let mut component =
            wit_component::ComponentEncoder::default().validate(true).module(&module).unwrap().encode().unwrap();

        // Sections may come in any order, so the extra instances go at the end, where
        // nothing the encoder made refers to them; the instances are created all the
        // same, each with its own memory.
        let first_extra = core_modules(&component);
        let mut instances = InstanceSection::new();
        for (offset, &pages) in self.extra.iter().enumerate() {
            let mut module = Module::new();
            let mut memories = MemorySection::new();
            memories.memory(memory(pages));
            module.section(&memories);
            ModuleSection(&module).append_to_component(&mut component);
            instances.instantiate(first_extra + offset as u32, Vec::<(&str, ModuleArg)>::new());
        }
        if !self.extra.is_empty() {
            instances.append_to_component(&mut component);
        }
        component
    }

    /// The plugin's core module: `memory` (plus any further memories), `cabi_realloc`
    /// (a bump allocator) and `handle`, which returns a constant successful outcome.
    fn plugin_module(&self) -> Module {
        let mut types = TypeSection::new();
        types.ty().function([ValType::I32; 4], [ValType::I32]);
        // Event and settings flatten to more than 16 values, so they come by pointer;
        // the result flattens to more than one, so it goes back by pointer.
        types.ty().function([ValType::I32], [ValType::I32]);
        let mut functions = FunctionSection::new();
        functions.function(0).function(1);
        let mut memories = MemorySection::new();
        for &pages in &self.own {
            memories.memory(memory(pages));
        }
        let mut globals = GlobalSection::new();
        globals
            .global(GlobalType { val_type: ValType::I32, mutable: true, shared: false }, &ConstExpr::i32_const(HEAP));
        let mut exports = ExportSection::new();
        exports.export("memory", ExportKind::Memory, 0);
        exports.export("cabi_realloc", ExportKind::Func, 0);
        exports.export("handle", ExportKind::Func, 1);

        // cabi_realloc(old_ptr, old_size, align, new_size): the next `align`ed address
        // of the heap; nothing is ever freed or reallocated by the host here.
        let mut realloc = Function::new([(1, ValType::I32)]);
        realloc
            .instructions()
            .global_get(0)
            .local_get(2)
            .i32_add()
            .i32_const(1)
            .i32_sub()
            .i32_const(0)
            .local_get(2)
            .i32_sub()
            .i32_and()
            .local_tee(4)
            .local_get(3)
            .i32_add()
            .global_set(0)
            .local_get(4)
            .end();
        let mut handle = Function::new([]);
        let mut body = handle.instructions();
        if self.grow > 0 {
            body.i32_const(self.grow as i32).memory_grow(0).drop();
        }
        body.i32_const(RETURN_AREA).end();
        let mut code = CodeSection::new();
        code.function(&realloc).function(&handle);

        // result<outcome, error> from RETURN_AREA: case 0 (ok) at +0, then the outcome
        // at +4: status 0 (success) at +4, summary (pointer, length) at +8, output at +16.
        let mut data = vec![0u8; STRINGS];
        let mut put = |at: usize, value: usize| {
            data[at..at + 4].copy_from_slice(&(value as u32).to_le_bytes());
        };
        let area = RETURN_AREA as usize;
        put(area + 8, STRINGS);
        put(area + 12, SUMMARY.len());
        put(area + 16, STRINGS + SUMMARY.len());
        put(area + 20, OUTPUT.len());
        data.extend_from_slice(SUMMARY.as_bytes());
        data.extend_from_slice(OUTPUT.as_bytes());
        let mut segments = DataSection::new();
        segments.active(0, &ConstExpr::i32_const(0), data);

        let mut module = Module::new();
        module
            .section(&types)
            .section(&functions)
            .section(&memories)
            .section(&globals)
            .section(&exports)
            .section(&code)
            .section(&segments);
        module
    }
}

fn memory(pages: u64) -> MemoryType {
    MemoryType { minimum: pages, maximum: None, memory64: false, shared: false, page_size_log2: None }
}

/// How many core modules a component defines at its top level: the next one's index.
fn core_modules(component: &[u8]) -> u32 {
    let (mut count, mut depth) = (0, 0);
    for payload in wasmparser::Parser::new(0).parse_all(component) {
        match payload.unwrap() {
            wasmparser::Payload::Version { .. } => depth += 1,
            wasmparser::Payload::End(_) => depth -= 1,
            wasmparser::Payload::ModuleSection { .. } if depth == 1 => count += 1,
            _ => {}
        }
    }
    count
}

/// The limits every hostile plugin here runs with.
const LIMITS: &str = r#"limits = { timeout = "3s", memory = "64MiB" }"#;

/// Writes each `(name, component)` to `dir` and returns `[plugins.NAME]` tables for them.
fn plugin_tables(dir: &Path, plugins: &[(&str, Vec<u8>)]) -> String {
    let mut tables = String::new();
    for (name, wasm) in plugins {
        let path = dir.join(format!("{name}.wasm"));
        std::fs::write(&path, wasm).unwrap();
        tables += &format!("[plugins.{name}]\nwasm = \"{}\"\n{LIMITS}\n\n", path.display());
    }
    tables
}

/// A rule running `plugin` on pushes to `acme/<plugin>`.
fn rule(plugin: &str) -> String {
    format!(
        "[[rules]]\nname = \"{plugin}\"\non = \"push\"\nrepo = \"acme/{plugin}\"\nsteps = [{{ plugin = \"{plugin}\" }}]\n\n"
    )
}

/// Posts a push to `acme/<repo>` and returns the one job it made.
async fn push(daemon: &TestDaemon, repo: &str) -> String {
    let payload = push_payload("acme", repo, "refs/heads/main", &"1".repeat(40), &"2".repeat(40), "file:///unused");
    let (status, body) = daemon.post_github("github", "push", &payload, SECRET).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["jobs"].as_array().map(Vec::len), Some(1), "{body}");
    body["jobs"][0].as_str().unwrap().to_owned()
}

/// The job's record as text, with JSON's escaped quotes undone.
fn text(record: &Value) -> String {
    serde_json::to_string(record).unwrap().replace("\\\"", "\"")
}

/// Issue 16, finding 10: six memories of 16 MiB each do not make 96 MiB of a 64 MiB limit.
#[tokio::test(flavor = "multi_thread")]
async fn memories_spread_over_core_instances_share_the_step_memory_limit() {
    let wasm = tempfile::tempdir().unwrap();
    let plugins = [
        // 96 MiB in six memories of 16 MiB: each alone is a quarter of the limit.
        ("many-memories", Hostile::spread(6).component()),
        // 64 MiB in four memories: exactly the limit, which a step may use.
        ("full-memories", Hostile::spread(4).component()),
        // 48 MiB at instantiation, then one memory grows by 17 MiB: 33 MiB in that
        // memory, 65 MiB in all.
        ("growing-memory", Hostile { grow: ((17 << 20) / PAGE) as u32, ..Hostile::spread(3) }.component()),
    ];
    let mut config = format!("{}\n{}", github_source(), plugin_tables(wasm.path(), &plugins));
    config += &format!("[plugins.empty]\nwasm = \"{}\"\n\n", env!("GITAUTO_GUEST_EMPTY"));
    for (name, _) in &plugins {
        config += &rule(name);
    }
    config += &rule("empty");
    let daemon = TestDaemon::start(&config).await;

    let mut jobs = Vec::new();
    for (name, _) in &plugins {
        jobs.push(push(&daemon, name).await);
    }
    let mut records = Vec::new();
    for job in &jobs {
        records.push(daemon.finished_job(job).await);
    }
    let [many, full, growing] = &records[..] else { unreachable!("one job per plugin") };
    // Stopped while instantiating, at the fifth memory (80 MiB), before `handle` runs.
    assert_eq!(many["state"], "failed", "{many:#}");
    assert!(text(many).contains("plugin many-memories trapped: memory limit of 64 MiB exceeded"), "{many:#}");
    assert_eq!(full["state"], "succeeded", "{full:#}");
    assert!(text(full).contains(SUMMARY), "{full:#}");
    assert_eq!(growing["state"], "failed", "{growing:#}");
    assert!(text(growing).contains("plugin growing-memory trapped: memory limit of 64 MiB exceeded"), "{growing:#}");

    // The daemon is unharmed and serves an ordinary step.
    assert_eq!(daemon.get("/healthz").await.0, 200);
    let ordinary = daemon.finished_job(&push(&daemon, "empty").await).await;
    assert_eq!(ordinary["state"], "succeeded", "{ordinary:#}");
    daemon.stop().await;
}

/// Why the daemon refuses to start with `plugin` configured.
async fn load_error(plugin: Vec<u8>) -> String {
    let dir = tempfile::tempdir().unwrap();
    let config = format!("{}\n{}", github_source(), plugin_tables(dir.path(), &[("hostile", plugin)]));
    let path = dir.path().join("gitauto.toml");
    std::fs::write(&path, config).unwrap();
    let config = gitauto::config::Config::load(&path).unwrap();
    match gitauto::daemon::Daemon::prepare(config).await {
        Ok(_) => panic!("the daemon started with a plugin it should refuse"),
        Err(err) => format!("{err:#}"),
    }
}

/// Issue 16, finding 10: the engine's pool refuses, when plugins load, a component with
/// more memories than it allows (8 per component, 1 per core module). This assumes the
/// pool: where it is unavailable (a tight `ulimit -v`), the host allocates on demand, these
/// components load, and the step's limiter counts memories instead.
#[tokio::test(flavor = "multi_thread")]
async fn more_memories_than_a_component_may_hold_are_refused_at_load() {
    // Nine memories of one page each: 576 KiB in all, but one memory too many.
    let spread = load_error(Hostile { own: vec![1], extra: vec![1; 8], grow: 0 }.component()).await;
    assert!(spread.starts_with("plugin `hostile`: "), "{spread}");
    assert!(
        spread.contains("needs more than this host gives one component (at most 64 core instances, 8 linear memories"),
        "{spread}"
    );
    assert!(spread.contains("9 Wasm linear memories, which exceeds the configured maximum of 8"), "{spread}");

    // Six memories of 16 MiB in the plugin's own core module (multi-memory).
    let one_module = load_error(Hostile { own: vec![SIXTEEN_MIB; 6], extra: Vec::new(), grow: 0 }.component()).await;
    assert!(one_module.starts_with("plugin `hostile`: "), "{one_module}");
    assert!(one_module.contains("defined memories count of 6 exceeds the per-instance limit of 1"), "{one_module}");
}
