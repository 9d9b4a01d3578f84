"""Character-level recurrent language models ([B, T] int32 tokens -> [B, T, vocab] logits).

After the LEAF Shakespeare next-character model (Caldas et al., "LEAF: A Benchmark for
Federated Settings", 2018, `models/shakespeare/stacked_lstm.py`: 8-dim character embedding,
recurrent layers, a softmax over the vocabulary at every position), made cheaper for CPU
simulation: by default one recurrent layer of 128 units instead of two of 256. `CharGRU` uses
a GRU cell (Cho et al., 2014), `CharLSTM` an LSTM cell (Hochreiter & Schmidhuber, 1997).
"""

from __future__ import annotations

import flax.linen as nn
import jax


class _CharRNN(nn.Module):
    """Embed(vocab, embed) -> `layers` x RNN(cell(hidden)) -> Dense(vocab), per position."""

    vocab_size: int
    hidden: int = 128
    embed: int = 8
    layers: int = 1

    def _cell(self, name: str) -> nn.RNNCellBase:
        raise NotImplementedError

    @nn.compact
    def __call__(self, tokens: jax.Array) -> jax.Array:
        x = nn.Embed(self.vocab_size, self.embed, name="embed")(tokens)
        for i in range(self.layers):
            x = nn.RNN(self._cell(f"cell{i + 1}"), name=f"rnn{i + 1}")(x)
        return nn.Dense(self.vocab_size, name="out")(x)


class CharGRU(_CharRNN):
    """Character model with GRU layers."""

    def _cell(self, name: str) -> nn.RNNCellBase:
        return nn.GRUCell(features=self.hidden, name=name)


class CharLSTM(_CharRNN):
    """Character model with LSTM layers."""

    def _cell(self, name: str) -> nn.RNNCellBase:
        return nn.OptimizedLSTMCell(features=self.hidden, name=name)
