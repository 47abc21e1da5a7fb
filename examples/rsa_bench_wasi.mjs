// Runs a wasm32-wasip1 command module (examples/rsa_bench.rs) under Node's WASI, i.e. in V8.
// The kfauth library links proxy-wasm, whose host functions ("env" imports) the benchmark
// never calls: they are stubbed with functions that throw.
import { readFile } from "node:fs/promises";
import { WASI } from "node:wasi";
import { argv } from "node:process";

const wasi = new WASI({ version: "preview1", args: argv.slice(2), env: {} });
const module = await WebAssembly.compile(await readFile(argv[2]));
const imports = wasi.getImportObject();
for (const { module: from, name, kind } of WebAssembly.Module.imports(module)) {
  if (from !== "env" || kind !== "function") continue;
  imports.env ??= {};
  imports.env[name] = () => {
    throw new Error(`host function ${name} is not available`);
  };
}
const { exports } = await WebAssembly.instantiate(module, imports);
// proxy-wasm also exports a reactor's _initialize; WASI refuses a module with both.
wasi.start({ exports: { memory: exports.memory, _start: exports._start } });
