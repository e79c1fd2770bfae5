// concat: the object followed by each extra input, in order; a `separator` parameter goes between.
export async function invoke({ inputs, output, params }) {
  output.setMetadata({ ...inputs[0].metadata, 'Concat-Inputs': String(inputs.length) });
  const separator = params.separator ?? '';
  for (let i = 0; i < inputs.length; i++) {
    if (i > 0 && separator) output.stream.write(separator);
    for await (const chunk of inputs[i].stream) {
      if (!output.stream.write(chunk)) await new Promise((resolve) => output.stream.once('drain', resolve));
    }
  }
}
