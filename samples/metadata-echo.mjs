// metadata-echo: the output metadata is the input metadata plus every parameter (as Param-<name>);
// the body is the same record as JSON, so it shows what the storlet was given.
export default {
  async invoke({ inputs, output, params }) {
    const [object] = inputs;
    object.stream.resume(); // the body is not needed
    const record = { ...object.metadata };
    for (const [name, value] of Object.entries(params)) record[`Param-${name}`] = value;
    output.setMetadata(record);
    output.stream.end(JSON.stringify({ metadata: object.metadata, params, range: object.range ?? null }) + '\n');
  },
};
