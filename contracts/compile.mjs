#!/usr/bin/env node
// Compiles contracts/*.sol with the pinned `solc` npm package and writes
// contracts/build/<ContractName>.json = {contractName, abi, bytecode}.
// Usage: npm run compile   (or: node contracts/compile.mjs)

import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import solc from 'solc'

const contractsDir = dirname(fileURLToPath(import.meta.url))
const buildDir = join(contractsDir, 'build')

// Source keys are bare file names (not absolute paths) so the metadata hash
// embedded in the bytecode does not depend on where the repo is checked out.
const sourceFiles = readdirSync(contractsDir)
  .filter((name) => name.endsWith('.sol'))
  .sort()

if (sourceFiles.length === 0) {
  console.error(`no .sol files found in ${contractsDir}`)
  process.exit(1)
}

const sources = {}
for (const name of sourceFiles) {
  sources[name] = { content: readFileSync(join(contractsDir, name), 'utf8') }
}

const input = {
  language: 'Solidity',
  sources,
  settings: {
    optimizer: { enabled: true, runs: 200 },
    evmVersion: 'cancun',
    outputSelection: {
      '*': { '*': ['abi', 'evm.bytecode.object'] }
    }
  }
}

function findImports (path) {
  return { error: `imports are not supported (${path})` }
}

const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }))

const diagnostics = output.errors ?? []
const errors = diagnostics.filter((d) => d.severity === 'error')
for (const d of diagnostics.filter((d) => d.severity !== 'error')) {
  console.error(d.formattedMessage ?? d.message)
}
if (errors.length > 0) {
  for (const e of errors) console.error(e.formattedMessage ?? e.message)
  console.error(`compilation failed with ${errors.length} error(s) (solc ${solc.version()})`)
  process.exit(1)
}

mkdirSync(buildDir, { recursive: true })

const written = new Set()
for (const sourceName of Object.keys(output.contracts ?? {}).sort()) {
  const contracts = output.contracts[sourceName]
  for (const contractName of Object.keys(contracts).sort()) {
    if (written.has(contractName)) {
      console.error(`duplicate contract name ${contractName} (in ${sourceName})`)
      process.exit(1)
    }
    written.add(contractName)

    const contract = contracts[contractName]
    const artifact = {
      contractName,
      abi: contract.abi,
      bytecode: '0x' + contract.evm.bytecode.object
    }
    const outFile = join(buildDir, `${contractName}.json`)
    writeFileSync(outFile, JSON.stringify(artifact, null, 2) + '\n')
    console.log(`wrote ${outFile}`)
  }
}

if (written.size === 0) {
  console.error('compiler produced no contracts')
  process.exit(1)
}
console.log(`compiled ${written.size} contract(s) with solc ${solc.version()}`)
