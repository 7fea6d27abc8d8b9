// What the official @atproto/api detects in each text read as a JSON array on stdin: its
// RichText.detectFacetsWithoutResolution (mentions keep their handle in place of a DID).
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { RichText } from '@atproto/api'

const require = createRequire(import.meta.url)
const texts = JSON.parse(readFileSync(0, 'utf8'))
const cases = texts.map((text) => {
  const rt = new RichText({ text })
  rt.detectFacetsWithoutResolution()
  const facets = (rt.facets ?? []).map((f) => {
    const feature = f.features[0]
    const kind = feature.$type.split('#')[1]
    const value = kind === 'mention' ? feature.did : kind === 'link' ? feature.uri : feature.tag
    return [f.index.byteStart, f.index.byteEnd, kind, value]
  })
  return { text, facets }
})
// The package's own version: its package.json is two folders up from its entry point.
const entry = require.resolve('@atproto/api')
const version = JSON.parse(readFileSync(entry.replace(/dist\/[^/]*$/, 'package.json'), 'utf8')).version
process.stdout.write(JSON.stringify({ generator: '@atproto/api ' + version, cases }))
