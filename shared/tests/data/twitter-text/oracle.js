// What the official twitter-text says of each text read as a JSON array on stdin.
const twitter = require('twitter-text');
const texts = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const out = texts.map(text => {
  const parsed = twitter.parseTweet(text);
  const urls = twitter.extractUrlsWithIndices(text.normalize()).map(u => u.url);
  return {text, weightedLength: parsed.weightedLength, valid: parsed.valid, urls};
});
process.stdout.write(JSON.stringify({generator: 'twitter-text ' + require('twitter-text/package.json').version, cases: out}, null, 0));
